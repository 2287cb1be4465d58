import type { Command } from '../command.ts';
import { cancel } from './cancel.ts';
import { evacuate } from './evacuate.ts';
import { events } from './events.ts';
import { ls } from './ls.ts';
import { migrate } from './migrate.ts';
import { nodes } from './nodes.ts';
import { resolve } from './resolve.ts';
import { retry } from './retry.ts';
import { rotateKeyCommand } from './rotate-key.ts';
import { services } from './services.ts';
import { status } from './status.ts';
import { wait } from './wait.ts';
import { web } from './web.ts';

/** Every command, in the order `haul --help` lists them: one entry per command. */
export const commands: readonly Command[] = [
  migrate,
  evacuate,
  status,
  wait,
  ls,
  events,
  cancel,
  retry,
  resolve,
  nodes,
  services,
  web,
  rotateKeyCommand,
];

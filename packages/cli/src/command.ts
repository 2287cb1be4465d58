import type { NatsConnection } from '@nats-io/transport-node';
import type { EventLog } from '@haul/bus';
import type { Args, FlagSpecs, PositionalSpec } from './args.ts';
import type { ApiClient } from './client.ts';
import type { ExitName } from './exit-codes.ts';
import type { Output } from './output.ts';

/** What a command gets to run: its parsed arguments, its output, and NATS opened only when it asks. */
export type Context = {
  args: Args;
  out: Output;
  /** A message for people on stderr. */
  say(s: string): void;
  json: boolean;
  nc(): Promise<NatsConnection>;
  api(): Promise<ApiClient>;
  /** The event log (each event's envelope checked, not its schema: see envelope-validators.ts). */
  log(): Promise<EventLog>;
  /** Aborted by Ctrl-C (SIGINT): a command that waits stops and returns 'interrupted'. */
  signal: AbortSignal;
};

/**
 * One command of the CLI: everything its `--help` shows, and its run. The table of commands (commands/index.ts)
 * has one entry per command.
 */
export type Command = {
  name: string;
  /** One line for `haul --help`. */
  summary: string;
  /** What it does, for `haul CMD --help` (a few lines). */
  description: string;
  positionals: readonly PositionalSpec[];
  /** Its own flags; --nats and --help are added to every command. */
  flags: FlagSpecs;
  examples: readonly string[];
  /** The outcomes it can end with (beyond usage, NATS unreachable, error and interrupted, which all can). */
  exits: readonly ExitName[];
  /** It runs until stopped (`web`): its NATS connection reconnects when lost, where a one-shot command fails. */
  runsUntilStopped?: boolean;
  run(ctx: Context): Promise<ExitName>;
};

/** Flags every command takes. */
export const commonFlags: FlagSpecs = {
  nats: {
    kind: 'string',
    value: 'URL',
    help: 'NATS servers, comma-separated (identity: HAUL_NKEY_SEED_FILE or HAUL_CREDS_FILE)',
    default: '$HAUL_NATS_URL or nats://127.0.0.1:4222',
  },
  help: { kind: 'boolean', short: 'h', help: 'show this help' },
};

/** The --json flag of a command that prints. */
export const jsonFlag: FlagSpecs = {
  json: { kind: 'boolean', help: 'machine-readable output: JSON (one object per line for lists and logs)' },
};

/** The --timeout flag of a command that follows a migration until it ends (haul migrate, haul wait). */
export const timeoutFlag: FlagSpecs = {
  timeout: {
    kind: 'duration',
    value: 'DURATION',
    help: 'stop waiting after DURATION (500ms, 30s, 5m, 1h); the migration goes on',
    default: 'wait until it ends',
  },
};

/** The one positional of a command about one migration. */
export const migrationIdArg: PositionalSpec = { name: 'ID', help: 'the migration id (m-…)', required: true };

/** Outcomes every command can end with. */
export const commonExits: readonly ExitName[] = ['usage', 'natsUnreachable', 'error', 'interrupted'];

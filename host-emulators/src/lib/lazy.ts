import type * as ChildProcess from 'node:child_process';
import type * as Crypto from 'node:crypto';
import type * as Fxp from 'fast-xml-parser';
import { createRequire } from 'node:module';
import type * as Net from 'node:net';

/**
 * Node's own modules that most emulated tool calls never use, loaded at their first use instead of at start. Every
 * tool call is a new Node process, and requiring `node:crypto`, `node:child_process` and `node:net` (and what they
 * load) took about 9 ms of a call's 75–100: `vzctl status` 100.8 → 91.7 ms, `ploop snapshot-list` 83.1 → 75.2 ms
 * (hyperfine, 60 runs each, the same bundles with these three required lazily). A call that needs one pays for it
 * then: a block's digest, criu talking to the CT's init, vzctl starting criu. (A snapshot's new names come from
 * /dev/urandom, as ploop makes them: lib/uuid.ts.)
 */
const load = createRequire(import.meta.url);

/** The module, required once: a hot loop may call these. */
function once<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= load(id) as T);
}

export const crypto = once<typeof Crypto>('node:crypto');
export const childProcess = once<typeof ChildProcess>('node:child_process');
export const net = once<typeof Net>('node:net');
/**
 * fast-xml-parser, from its package beside the emulators (not bundled: a module in the bundle is parsed with it at every
 * start, however late it runs). Only a call that reads or writes a DiskDescriptor.xml needs it (ploop/descriptor.ts).
 */
export const fastXmlParser = once<typeof Fxp>('fast-xml-parser');

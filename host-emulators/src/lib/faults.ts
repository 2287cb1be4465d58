import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.ts';
import { acquireLock } from './lock.ts';
import { dirname } from 'node:path';
import { writeFully } from './write-fully.ts';

/**
 * Emulator-only proof seam: a fault plan (JSON file named by HAUL_EMU_FAULTS) makes a chosen tool invocation fail
 * with a given exit code and stderr, hang, or be killed — matched by tool, subcommand, node and call count — so
 * tests can fail every step of a migration on purpose. Counts are kept next to the plan.
 */
export type FaultRule = {
  tool: 'ploop' | 'vzctl' | 'criu' | 'shaman' | 'flock' | 'cgexec';
  /** The subcommand (first non-option argument), e.g. "snapshot", "restore", "dump". */
  sub?: string;
  /** Only on this emulated node. */
  node?: string;
  /** A regular expression the whole argv (joined by spaces) must match. */
  match?: string;
  /** Which matching call (1 = the first); default every call. */
  call?: number;
  /**
   * fail: exit with exitCode/stderr; hang: never return; kill: the tool dies before doing anything;
   * kill-caller: the tool kills the process that ran it (a crashed node agent) before doing anything;
   * kill-caller-after: the tool does its work, then kills its caller (the effect happened, no one reports it);
   * orphan: the tool kills its caller, writes its own pid to `<waitFor>.pid`, waits until the file `waitFor` exists,
   * then does its work (a tool its crashed agent left running, acting later);
   * wait: the tool writes its own pid to `<waitFor>.pid` and does its work once the file `waitFor` exists (a gate: a
   * test holds a step at its tool while it does something else, whatever the machine's speed);
   * kill-before-store: the tool does its work up to the store that would end it, then dies (a ploop killed on its
   * timeout, or whose host lost power, between making a new delta and renaming the descriptor that names it over the
   * old one: ploop's snapshot and snapshot-switch, ops.ts; a tool without that point does its work);
   * kill-after-delta: the same, but right after the new delta is made, before an online snapshot switches its device
   * to it (ploop's snapshot).
   */
  action:
    | 'fail'
    | 'hang'
    | 'kill'
    | 'kill-caller'
    | 'kill-caller-after'
    | 'kill-before-store'
    | 'kill-after-delta'
    | 'orphan'
    | 'wait';
  /** For orphan and wait: the file whose appearance lets the tool go on. */
  waitFor?: string;
  exitCode?: number;
  stderr?: string;
};

export function subcommandOf(argv: string[]): string | undefined {
  return argv.find((a) => !a.startsWith('-'));
}

/** Set when a matched rule asks to kill the caller once the tool has done its work. */
export let killCallerAfter = false;

/** Set when a matched rule asks the tool to die right before the store that would end its work. */
export let killBeforeStore = false;

/** Set when a matched rule asks the tool to die right after it made a new delta. */
export let killAfterDelta = false;

export async function applyFaults(
  tool: string,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const file = env['HAUL_EMU_FAULTS'];
  if (!file || !existsSync(file)) return;
  const rules = JSON.parse(readFileSync(file, 'utf8')) as FaultRule[];
  const node = nodeName(env);
  const sub = subcommandOf(argv);
  const joined = argv.join(' ');
  const countsFile = countsFileOf(file);
  for (const [idx, r] of rules.entries()) {
    if (
      r.tool !== tool ||
      (r.sub !== undefined && r.sub !== sub) ||
      (r.node !== undefined && r.node !== node)
    )
      continue;
    if (r.match !== undefined && !new RegExp(r.match).test(joined)) continue;
    const release = acquireLock(dirname(file), `faults:${file}`, 10_000);
    if (!release) throw new Error(`the counts of the fault plan ${file}: their lock timed out`);
    let n: number;
    try {
      const counts = existsSync(countsFile)
        ? (JSON.parse(readFileSync(countsFile, 'utf8')) as Record<string, number>)
        : {};
      n = (counts[idx] ?? 0) + 1;
      counts[idx] = n;
      writeFileAtomic(countsFile, JSON.stringify(counts));
    } finally {
      release();
    }
    if (r.call !== undefined && r.call !== n) continue;
    if (r.action === 'kill') process.kill(process.pid, 'SIGKILL');
    if (r.action === 'kill-caller') {
      process.kill(process.ppid, 'SIGKILL');
      process.exit(r.exitCode ?? 1);
    }
    if (r.action === 'kill-caller-after') {
      killCallerAfter = true;
      return;
    }
    if (r.action === 'kill-before-store') {
      killBeforeStore = true;
      return;
    }
    if (r.action === 'kill-after-delta') {
      killAfterDelta = true;
      return;
    }
    if (r.action === 'orphan') return orphan(r.waitFor);
    if (r.action === 'wait') return gate(r.waitFor);
    if (r.action === 'hang') await new Promise<never>(() => setInterval(() => {}, 1 << 30));
    writeFully(2, `${r.stderr ?? `${tool} ${sub ?? ''}: injected failure`}\n`);
    process.exit(r.exitCode ?? 1);
  }
}

/**
 * Become a tool whose caller died: kill it, say who we are, and go on only once `waitFor` exists (looked at every
 * 20 ms: the test that creates it is another process).
 */
async function orphan(waitFor: string | undefined): Promise<void> {
  if (!waitFor) throw new Error('fault plan: an orphan rule needs waitFor');
  process.kill(process.ppid, 'SIGKILL');
  await gate(waitFor);
}

/** Say who we are in `<waitFor>.pid`, then go on only once `waitFor` exists (looked at every 20 ms). */
async function gate(waitFor: string | undefined): Promise<void> {
  if (!waitFor) throw new Error('fault plan: a wait or orphan rule needs waitFor');
  writeFileAtomic(`${waitFor}.pid`, String(process.pid));
  while (!existsSync(waitFor)) await new Promise((r) => setTimeout(r, 20));
}

/** Where a plan's call counts are kept: next to it. */
const countsFileOf = (plan: string): string => `${plan}.counts.json`;

/**
 * Put a new fault plan in place, its call counts from zero: the plan is replaced whole (a tool reading it sees the
 * old plan or the new one) and the counts are reset under the lock a tool counts under.
 */
export function writeFaultPlan(file: string, rules: FaultRule[]): void {
  writeFileAtomic(file, JSON.stringify(rules));
  const release = acquireLock(dirname(file), `faults:${file}`, 10_000);
  if (!release) throw new Error(`the counts of the fault plan ${file}: their lock timed out`);
  try {
    writeFileAtomic(countsFileOf(file), '{}');
  } finally {
    release();
  }
}

function nodeName(env: NodeJS.ProcessEnv): string | undefined {
  const root = env['HAUL_EMU_ROOT'];
  if (!root) return undefined;
  try {
    return (JSON.parse(readFileSync(`${root}/etc/haul-emu.json`, 'utf8')) as { node: string }).node;
  } catch {
    return undefined;
  }
}

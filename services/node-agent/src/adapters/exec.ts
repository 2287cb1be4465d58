import type { Writable } from 'node:stream';
import { execa } from 'execa';
import type { AgentMetrics, Logger } from '@haul/bus';
import { errorCodes } from '@haul/domain';
import type { ToolRecords } from './orphaned-tools.ts';
import { asToolTime } from './tool-time.ts';

/**
 * The end of what a tool said, as a failure event carries it: its last 20 lines, at most 3,000 characters (the
 * event's schema takes 4,000).
 */
export const tailOf = (text: string): string => text.trim().split('\n').slice(-20).join('\n').slice(-3000);

/** A host tool exited non-zero, timed out or was cancelled: everything the failure event needs. */
export class CommandFailedError extends Error {
  readonly code: string;
  readonly command: string[];
  readonly exitCode: number | undefined;
  /** The end of what the tool said: its stderr, after the log given with withLog. */
  readonly stderrTail: string;
  readonly stderr: string;
  readonly why: 'exit' | 'timeout' | 'cancelled';
  /** What the tool wrote on stdout (kept for withLog, not published). */
  readonly stdout: string;
  constructor(
    command: string[],
    exitCode: number | undefined,
    stderr: string,
    why: 'exit' | 'timeout' | 'cancelled',
    stdout = '',
  ) {
    const tail = tailOf(stderr);
    super(
      `${command.join(' ')} ${why === 'exit' ? `exited with ${exitCode}` : why === 'timeout' ? 'timed out' : 'was cancelled'}${tail ? `: ${tail.split('\n').at(-1)}` : ''}`,
    );
    this.name = 'CommandFailedError';
    this.code =
      why === 'exit'
        ? errorCodes.toolFailed
        : why === 'timeout'
          ? errorCodes.toolTimeout
          : errorCodes.toolCancelled;
    this.command = command;
    this.exitCode = exitCode;
    this.stderrTail = tail;
    this.stderr = stderr;
    this.why = why;
    this.stdout = stdout;
  }

  /**
   * The same failure, with what the tool wrote elsewhere (a log file, its stdout) before its stderr: a tool that logs
   * to a file says little or nothing on stderr (criu with -o).
   */
  withLog(log: string): CommandFailedError {
    const text = log.trim();
    if (text === '') return this;
    return new CommandFailedError(
      this.command,
      this.exitCode,
      `${text}\n${this.stderr}`,
      this.why,
      this.stdout,
    );
  }
}

export type RunOptions = {
  timeoutMs: number;
  signal?: AbortSignal;
  okCodes?: number[];
  /**
   * The tool must not be cut off half done. ploop snapshot and snapshot-delete change a device and then its
   * descriptor: killed between the two, they leave them disagreeing, which no inspection of the descriptor sees (a
   * delta the device writes that the descriptor does not name, swept as an orphan; a delta merged on the device that
   * the descriptor still names, merged again). vzctl restore and start make the CT's tasks, which leave the tool's
   * process group as they are made and outlive it: killed half-way, they leave a CT half restored (or half started)
   * that the same command run again takes for a CT that runs (vzctl's 32), and the step for done. So once started it
   * runs to its end: the agent's stop does not cancel it, and an agent started after this one died waits for it
   * (orphaned-tools.ts) instead of ending it. Only its timeout ends it: a tool hung that long fails its step, and the
   * rollback stops what it left.
   */
  toItsEnd?: boolean;
};
export type RunResult = { exitCode: number; stdout: string; stderr: string };
export type Runner = (tool: string, args: string[], opts: RunOptions) => Promise<RunResult>;

/**
 * How a host tool, and a held final dump's `sh`, start: held at a gate. The `sh` waits for a line on its stdin before
 * it runs anything; the agent records the process (its pid, and for a held dump its start time), then opens the gate
 * (recordThenOpen). An agent that dies between the spawn and the record never opens it: its end of the pipe closes
 * with it, `read` meets the end of input, and `sh` ends without running anything. So no tool runs unrecorded, where
 * before one could act beside the restarted agent when the agent died in that moment (seen on a loaded machine), and
 * no final dump freezes a CT that no record names (held-dumps.ts). One `sh` start more per call.
 */
export const gatedShell = (script: string): string => `read -r _ || exit 1; ${script}`;

/**
 * Record a gated child, then open its gate. A record that fails (a full disk) closes the gate instead, so the child
 * ends without running anything rather than waiting at the gate for ever, and the failure is thrown.
 */
export function recordThenOpen(stdin: Writable | null | undefined, record: () => void): void {
  stdin?.on('error', () => undefined); // the gate gone already (the child killed): nothing to open or close
  try {
    record();
  } catch (err) {
    stdin?.destroy();
    throw err;
  }
  stdin?.end('\n');
}

/** A tool: the gate's `sh` replaces itself with the tool (the same pid, process group and parent; stdin /dev/null). */
const gated = ['-c', gatedShell('exec "$0" "$@" </dev/null')];

/**
 * The one place haul runs host tools. Each tool runs in its own process group so a timeout or a cancellation kills
 * the whole tree it started (not the containers it launched, which detach on their own, as real CTs do). With
 * `records`, each tool is recorded while it runs, so that an agent started after this one died ends what it left
 * running (orphaned-tools.ts); it starts only once recorded (gated).
 */
export function createRunner(
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
  metrics?: Pick<AgentMetrics, 'toolFailed'>,
  records?: Pick<ToolRecords, 'started' | 'ended'>,
): Runner {
  const run: Runner = async (tool, args, opts) => {
    // A tool is never started once the agent stops: its abort would not reach a tool spawned after it.
    if (opts.signal?.aborted) throw new CommandFailedError([tool, ...args], undefined, '', 'cancelled');
    const started = Date.now();
    const sub = execa('/bin/sh', [...gated, tool, ...args], {
      reject: false,
      detached: true,
      env,
      extendEnv: false,
      stdin: 'pipe',
    });
    try {
      recordThenOpen(sub.stdin, () => {
        if (sub.pid !== undefined)
          records?.started(sub.pid, [tool, ...args], opts.toItsEnd ? started + opts.timeoutMs : undefined);
      });
    } catch (err) {
      if (sub.pid !== undefined) records?.ended(sub.pid); // what the failed write left of the record
      throw err;
    }
    const killTree = () => {
      if (sub.pid !== undefined) {
        try {
          process.kill(-sub.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    };
    let why: 'timeout' | 'cancelled' | undefined;
    const timer = setTimeout(() => {
      why = 'timeout';
      killTree();
    }, opts.timeoutMs);
    const onAbort = () => {
      why = 'cancelled';
      killTree();
    };
    if (!opts.toItsEnd) opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await sub;
      const exitCode = r.exitCode ?? -1;
      log.debug({ tool, args, exitCode, ms: Date.now() - started }, 'tool ran');
      const failedAs =
        why ?? (exitCode !== 0 && !(opts.okCodes ?? []).includes(exitCode) ? 'exit' : undefined);
      const [stdout, stderr] = [String(r.stdout ?? ''), String(r.stderr ?? '')];
      if (failedAs) {
        metrics?.toolFailed(tool, r.exitCode, failedAs);
        throw new CommandFailedError([tool, ...args], r.exitCode ?? undefined, stderr, failedAs, stdout);
      }
      return { exitCode, stdout, stderr };
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (sub.pid !== undefined) records?.ended(sub.pid);
    }
  };
  // A tool's whole life, from the spawn to its exit, is host-tool time of the step that ran it (its toolMs).
  return (tool, args, opts) => asToolTime(() => run(tool, args, opts));
}

import { spawn } from 'node:child_process';
import {
  constants,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  closeSync,
  writeSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
  rmSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pidAlive, pidReused, procStat, stepTimeoutsMs, type Logger } from '@haul/bus';
import { errorCodes } from '@haul/domain';
import { waitForFile } from './adapters/files.ts';
import { gatedShell, recordThenOpen, tailOf } from './adapters/exec.ts';
import { criuLogs, logTail } from './adapters/tools.ts';
import { StepError } from './context.ts';

export const holdScript = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'haul-hold-frozen');

/**
 * Record the decision for the script holding a dump (once: a decision already written stands), then wake the script
 * through its `wake` FIFO. No reader is fine: the script opens the FIFO before it looks for the decision file. There
 * is none when the open fails (ENXIO: the script has not opened it yet, or is gone), or when the write does (EPIPE:
 * the script found the decision file by itself between the open and the write, and ended).
 */
export function writeDecision(dir: string, decision: 'commit' | 'abort'): void {
  if (!existsSync(join(dir, 'decision'))) {
    writeFileSync(join(dir, 'decision.tmp'), decision);
    renameSync(join(dir, 'decision.tmp'), join(dir, 'decision'));
  }
  let fd: number;
  try {
    fd = openSync(join(dir, 'wake'), constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return;
  }
  try {
    if (fstatSync(fd).isFIFO()) writeSync(fd, '\n');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
  } finally {
    closeSync(fd);
  }
}

export type HeldMeta = {
  migrationId: string;
  ctid: string;
  commandId: string;
  leaseMs: number;
  /** When the dump started (its lease runs from there). */
  frozenAt?: string;
  /** How long it may take to freeze the CT (its step's timeout): past that, under way, it is killed. */
  dumpTimeoutMs?: number;
  /** Where criu writes stats-dump (read after the release for the final frozen time). */
  workDir?: string;
};

/**
 * Final dumps held open at post-dump. criu runs detached (through `sh`, which records its exit status in
 * `criu.rc`), so a held dump — and the frozen CT — outlive a restart of the agent; everything about it lives in
 * its hold folder: meta.json, criu.pid and criu.start (the process and its start time), frozen, decision, criu.rc,
 * criu.log.
 */
export type HeldDumps = ReturnType<typeof createHeldDumps>;

/** How long a dump may take to freeze the CT: its step's timeout, or criu's for a hold folder that does not say. */
export const dumpTimeoutOf = (meta: Pick<HeldMeta, 'dumpTimeoutMs'>): number =>
  meta.dumpTimeoutMs ?? stepTimeoutsMs.criu;

/** How long a held dump's criu may take to end once decided: it only kills or resumes the CT's tasks. */
export const decidedCriuMs = stepTimeoutsMs.quick;

/** How a held dump's criu ended, for a message: its exit status, or none recorded (its `sh` was killed). */
export const criuEnd = (rc: number | undefined): string =>
  rc === undefined ? 'no exit status (its sh was killed)' : String(rc);

/** How often a dump's criu is looked at while it is waited for, besides the watch for its files (criuGone). */
const endLookMs = 250;

export function createHeldDumps(stateDir: string, log: Logger, env: NodeJS.ProcessEnv) {
  const root = join(stateDir, 'held');
  mkdirSync(root, { recursive: true });
  /** Told when the `sh` of a dump this process started ends (its criu ended before it). */
  const endListeners = new Set<(migrationId: string) => void>();
  const dirOf = (migrationId: string) => join(root, migrationId);
  const rcOf = (dir: string): number | undefined =>
    existsSync(join(dir, 'criu.rc')) ? Number(readFileSync(join(dir, 'criu.rc'), 'utf8').trim()) : undefined;

  /**
   * The folder's criu has not ended: no exit status recorded, its process alive, and the process the folder recorded
   * (its start time, `criu.start`: a `sh` SIGKILLed before it wrote `criu.rc` leaves a pid the kernel gives to
   * another process in time). A folder without `criu.start` (an agent older than it, or one that died between the two
   * writes) is judged by the pid alone.
   */
  const criuRunning = (dir: string): boolean => {
    if (rcOf(dir) !== undefined || !existsSync(join(dir, 'criu.pid'))) return false;
    const pid = Number(readFileSync(join(dir, 'criu.pid'), 'utf8'));
    // Cut short by the agent's death while it was written: its criu never ran (it runs once recorded, gatedShell).
    // As a number, '' is 0, and process group 0 has the kernel's threads.
    if (!Number.isInteger(pid) || pid <= 0) return false;
    const start = existsSync(join(dir, 'criu.start'))
      ? readFileSync(join(dir, 'criu.start'), 'utf8')
      : undefined;
    return pidAlive(pid) && !pidReused(pid, start);
  };

  /** A criu of this folder still running, before the CT is frozen. */
  const underWay = (dir: string): boolean => !existsSync(join(dir, 'frozen')) && criuRunning(dir);

  /**
   * Resolves once the process the folder recorded no longer runs (ended, or killed before it recorded a status: no
   * file tells that), looked at every endLookMs; stops looking when `signal` aborts.
   */
  function criuGone(dir: string, signal: AbortSignal): Promise<'ended'> {
    return new Promise((resolve) => {
      const look = setInterval(() => {
        if (criuRunning(dir)) return;
        clearInterval(look);
        resolve('ended');
      }, endLookMs);
      signal.addEventListener('abort', () => clearInterval(look), { once: true });
    });
  }

  /**
   * Kill the process group of the folder's `sh` (its criu with it), if the folder still names a running one: the
   * seized tasks run again once their tracer is gone (criu/seize.c, as leases.ts says).
   */
  function killCriu(dir: string): void {
    if (!criuRunning(dir)) return;
    const pid = Number(readFileSync(join(dir, 'criu.pid'), 'utf8'));
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }

  /** Kill a dump that never froze the CT (its tasks run again), and drop its folder: nothing of it is held. */
  function killAndDrop(dir: string): void {
    killCriu(dir);
    rmSync(dir, { recursive: true, force: true });
  }

  /**
   * Wait until the dump in `dir` holds the CT frozen; reject with criu's log if it ends first (with its command line
   * when this agent started it). A dump that neither freezes the CT nor ends within `timeoutMs` (criu hung after it
   * seized the tasks: its own --timeout covers only their collection) is killed, which lets the tasks run again, and
   * fails as timed out: the coordinator gives the step up at the same time, and the rollback's resume of the source,
   * queued behind this step, can then run. Its sh, killed with criu, records no status: criuGone sees that too.
   */
  async function frozenOrEnded(
    meta: HeldMeta,
    dir: string,
    timeoutMs: number,
    criuArgs?: string[],
  ): Promise<void> {
    const ac = new AbortController();
    const frozen = waitForFile(dir, 'frozen', ac.signal).then(() => 'frozen' as const);
    const ended = waitForFile(dir, 'criu.rc', ac.signal).then(() => 'ended' as const);
    const timedOut = delay(timeoutMs, 'timedOut' as const, { signal: ac.signal });
    const raced = await Promise.race([frozen, ended, criuGone(dir, ac.signal), timedOut]).finally(() =>
      ac.abort(),
    );
    await Promise.allSettled([frozen, ended, timedOut]);
    // Frozen as the time ran out: held, as if it had come first.
    const first = raced === 'timedOut' && existsSync(join(dir, 'frozen')) ? 'frozen' : raced;
    if (first === 'timedOut') {
      killAndDrop(dir);
      throw new StepError(
        errorCodes.toolTimeout,
        `criu dump neither froze CT ${meta.ctid} nor ended within ${timeoutMs} ms: killed, its tasks run again`,
      );
    }
    if (first === 'ended') {
      const rc = rcOf(dir);
      const said = criuEnd(rc);
      // Both files were there at the look (criu killed right after it froze the CT): the CT may be frozen. The folder
      // stays, as a dump that ended after its freeze, and the failure says so (in doubt: the rollback resumes it).
      if (existsSync(join(dir, 'frozen')))
        throw new StepError(errorCodes.dumpEnded, `criu dump ended with ${said} after it froze the CT`);
      // criu's own errors are in its -o log in the work dir, not in what sh captured (criu.log).
      const own = meta.workDir !== undefined ? logTail(join(meta.workDir, criuLogs.dump)) : '';
      const tail = tailOf([own, logTail(join(dir, 'criu.log'))].filter((t) => t !== '').join('\n'));
      rmSync(dir, { recursive: true, force: true });
      throw Object.assign(new Error(`criu dump ended with ${said} before the CT was frozen`), {
        ...(criuArgs ? { command: ['criu', ...criuArgs] } : {}),
        ...(rc !== undefined ? { exitCode: rc } : {}),
        stderrTail: tail,
      });
    }
    log.info(
      { migrationId: meta.migrationId, ctid: meta.ctid },
      'CT frozen: final dump held open at post-dump',
    );
  }

  return {
    dirOf,
    /**
     * Start `criu dump` held at post-dump; resolve once the CT is frozen, reject with criu's log if it ends first. A
     * dump of this migration still under way (its criu started by an agent that died before the CT was frozen, the
     * command delivered again) is waited for instead: a second criu beside it would remove its folder, and the
     * first one's `frozen` would then land in the second's, with nothing tracking the criu that holds the CT.
     */
    async start(meta: HeldMeta, criuArgs: string[], timeoutMs: number = dumpTimeoutOf(meta)): Promise<void> {
      const dir = dirOf(meta.migrationId);
      if (underWay(dir)) return this.adopt(meta.migrationId, timeoutMs);
      rmSync(dir, { recursive: true, force: true });
      // A log an earlier attempt left would pass for this one's if this criu failed before opening its own.
      if (meta.workDir !== undefined) rmSync(join(meta.workDir, criuLogs.dump), { force: true });
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
      const out = openSync(join(dir, 'criu.log'), 'a');
      // criu runs only once its process is recorded (gatedShell): an agent that died before the record would leave
      // a criu holding the CT frozen that no folder names, and the redelivered command would start a second one.
      const child = spawn(
        'sh',
        [
          '-c',
          gatedShell(
            'criu "$@" </dev/null; echo $? > "$HAUL_HOLD_DIR/criu.rc.tmp"; mv "$HAUL_HOLD_DIR/criu.rc.tmp" "$HAUL_HOLD_DIR/criu.rc"',
          ),
          'sh',
          ...criuArgs,
        ],
        {
          detached: true,
          stdio: ['pipe', out, out],
          env: { ...env, HAUL_HOLD_DIR: dir },
        },
      );
      closeSync(out);
      child.once('exit', () => {
        for (const tell of endListeners) tell(meta.migrationId);
      });
      try {
        recordThenOpen(child.stdin, () => {
          writeFileSync(join(dir, 'criu.pid'), String(child.pid));
          const start = child.pid === undefined ? undefined : procStat(child.pid)?.start;
          if (start !== undefined) writeFileSync(join(dir, 'criu.start'), start);
        });
      } catch (err) {
        // Not recorded, so never run: no folder may say a dump is under way (the next start would wait for it).
        rmSync(dir, { recursive: true, force: true });
        throw err;
      } finally {
        child.unref();
      }
      return frozenOrEnded(meta, dir, timeoutMs, criuArgs);
    },
    /**
     * Call `tell` when the `sh` of a dump this process started ends (its criu has ended by then, unless the `sh`
     * alone was killed: the look then finds no criu it can name, as the look every so often would, and the resume
     * leaves the abort decision for a criu still waiting: abandon). At once, where a look at the folder comes only
     * every so often. A dump an agent before a restart started has no such event.
     */
    onShEnd(tell: (migrationId: string) => void): void {
      endListeners.add(tell);
    },
    /** Does a criu of this migration's dump still run: held, or under way? */
    runs(migrationId: string): boolean {
      return criuRunning(dirOf(migrationId));
    },
    /**
     * Kill a dump of this migration still under way (its criu running, the CT not frozen), as a step's wait for it
     * does at its timeout (frozenOrEnded): its tasks run again. True when one was killed.
     */
    killUnderWay(migrationId: string): boolean {
      const dir = dirOf(migrationId);
      if (!underWay(dir)) return false;
      killAndDrop(dir);
      return true;
    },
    /** Is a dump of this migration under way: its criu running (started by an agent that died), the CT not frozen yet? */
    underWay(migrationId: string): boolean {
      return underWay(dirOf(migrationId));
    },
    /**
     * Adopt a dump under way (underWay): resolve once it holds the CT frozen, reject with criu's log if it ends first.
     * The work before the freeze was done by the agent that started it.
     */
    async adopt(migrationId: string, timeoutMs: number = stepTimeoutsMs.criu): Promise<void> {
      const dir = dirOf(migrationId);
      const meta = this.meta(migrationId);
      if (!meta) throw new Error(`no dump of ${migrationId} to adopt`);
      log.warn(
        { migrationId, ctid: meta.ctid },
        'a final dump an earlier agent started is still under way: waiting for it, not starting another',
      );
      return frozenOrEnded(meta, dir, timeoutMs);
    },
    /**
     * Wait while a dump of this migration is under way: until it holds the CT frozen, or its criu is gone (ended, or
     * killed before its end was recorded). One look at the folder each `pollMs`: a criu this agent did not start has
     * no exit to wait for.
     */
    async settled(migrationId: string, pollMs = 100): Promise<void> {
      const dir = dirOf(migrationId);
      while (underWay(dir)) await delay(pollMs);
    },
    /**
     * A resume found no dump of this migration holding the CT: an abort decision goes into its folder all the same,
     * for a criu still waiting at post-dump that the folder no longer names (its `sh` killed alone: `criu.pid` is the
     * `sh`'s). Harmless when criu is gone; nothing waits for it.
     */
    abandon(migrationId: string): void {
      const dir = dirOf(migrationId);
      if (existsSync(join(dir, 'meta.json'))) writeDecision(dir, 'abort');
    },
    /** Is there a dump held for this migration, with the CT frozen and criu still waiting? */
    isHeld(migrationId: string): boolean {
      const dir = dirOf(migrationId);
      return existsSync(join(dir, 'frozen')) && criuRunning(dir);
    },
    meta(migrationId: string): HeldMeta | undefined {
      try {
        return JSON.parse(readFileSync(join(dirOf(migrationId), 'meta.json'), 'utf8')) as HeldMeta;
      } catch (err) {
        // None, or forgotten since (another migration's step may end its held dump meanwhile).
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    /** All held dumps on this node. */
    list(): HeldMeta[] {
      return readdirSync(root)
        .filter((m) => this.isHeld(m))
        .map((m) => this.meta(m))
        .filter((m): m is HeldMeta => m !== undefined);
    },
    /**
     * Every dump whose criu still runs on this node: held, or under way (an agent that died started it, and nothing
     * else may adopt it: its command's outcome can be in the log already). Their leases are armed after a restart.
     */
    running(): HeldMeta[] {
      return readdirSync(root)
        .filter((m) => this.runs(m))
        .map((m) => this.meta(m))
        .filter((m): m is HeldMeta => m !== undefined);
    },
    /**
     * Every dump whose criu ended after it froze the CT with no decision written: killed (the OOM killer, an operator)
     * while no agent watched it, so no lease acted on its end. Its CT runs on the source again (leases.ts), and the
     * log does not say so. An agent that starts acts on each as its lease would have (leases.ts `ended`).
     */
    endedUndecided(): HeldMeta[] {
      const undecided = (dir: string) =>
        existsSync(join(dir, 'frozen')) && !existsSync(join(dir, 'decision')) && !criuRunning(dir);
      return readdirSync(root)
        .filter((m) => undecided(dirOf(m)))
        .map((m) => this.meta(m))
        .filter((m): m is HeldMeta => m !== undefined);
    },
    /**
     * Write the decision and wait for criu to finish; its exit status (0 = committed, 1 = resumed), or undefined when
     * the process the folder recorded ended without recording one (its `sh` killed, alone or with criu's group).
     * Looked at every so often as well as watched: such an end writes no file, and a wait for `criu.rc` alone never
     * ended, holding every later action of the migration behind it. A criu that has not ended `timeoutMs` after its
     * decision (it only has to kill or resume the tasks: seconds) is killed with its group, as a dump that never
     * freezes is: its tasks run again, and the caller finds no status (a commit's then stops the CT on the source).
     */
    async decide(
      migrationId: string,
      decision: 'commit' | 'abort',
      timeoutMs: number = decidedCriuMs,
    ): Promise<number | undefined> {
      const dir = dirOf(migrationId);
      writeDecision(dir, decision);
      const ac = new AbortController();
      const ended = await Promise.race([
        waitForFile(dir, 'criu.rc', ac.signal).then(() => true),
        criuGone(dir, ac.signal).then(() => true),
        delay(timeoutMs, false, { signal: ac.signal }).catch(() => true),
      ]).finally(() => ac.abort());
      if (!ended) {
        log.error(
          { migrationId, decision, timeoutMs },
          `criu did not end within ${timeoutMs} ms of its ${decision} decision: killed, its tasks run again`,
        );
        killCriu(dir);
        await criuGone(dir, new AbortController().signal);
      }
      return rcOf(dir);
    },
    /** The decision already written, if any, and criu's exit status once it ended. */
    outcome(migrationId: string): { decision?: string; rc?: number } {
      const dir = dirOf(migrationId);
      const d = existsSync(join(dir, 'decision'))
        ? readFileSync(join(dir, 'decision'), 'utf8').trim()
        : undefined;
      const rc = rcOf(dir);
      return { ...(d ? { decision: d } : {}), ...(rc !== undefined ? { rc } : {}) };
    },
    forget(migrationId: string): void {
      rmSync(dirOf(migrationId), { recursive: true, force: true });
    },
  };
}

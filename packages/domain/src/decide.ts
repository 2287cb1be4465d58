import type {
  Actor,
  DumpResult,
  ErrorInfo,
  MigrateRequest,
  MigrationEvent,
  StepCommand,
  StepName,
  StreamResult,
} from '@haul/schemas';
import { decideConvergence, usesPreDump, type ConvergenceInput } from './convergence.ts';
import { deadlinesOf, type SentAt, type TransferReports } from './deadlines.ts';
import { envelope } from './envelope.ts';
import { CommandRejectedError, errorCodes } from './errors.ts';
import { evolve } from './evolve.ts';
import { assumedSpeeds } from './assumed-speeds.ts';
import { frozenLeaseMs, type FrozenLeaseInput } from './frozen-lease.ts';
import { commandIdFor, copyGuid, originGuid } from './ids.ts';
import { askedBy, exhausted, resolve, retry, stall, type OperatorInput } from './operator.ts';
import { checkPreflight } from './preflight-check.ts';
import { migrationDisks, targetDdxmlOf, type DiskRef } from './disks.ts';
import { livePassesOf, livePassSubject, nextLivePass } from './disk-passes.ts';
import { planCleanupOf, planRollbackOf, bringsSourceBack, type PlannedAction } from './plans.ts';
import { inFlight, once, stepKey, stepOf, type MigrationState, type StepRecord } from './state.ts';
import { stepTable, type TimeoutClass } from './steps.ts';
import { deriveStatsOf } from './stats.ts';
import { withRequestDefaults } from './request.ts';

export type DecideMeta = {
  /** ISO time of this decision: the core reads no clock. */
  now: string;
  actor: Actor;
  timeoutsMs: Record<TimeoutClass, number>;
  frozenLeaseMs: number;
  /** Attempts of a compensation or cleanup action before the migration waits for an operator. */
  maxAttempts: number;
  /**
   * A transfer that neither moved bytes nor reported a wait on purpose for this long is recorded as failed
   * (HAUL_STREAM_STALLED).
   */
  stallMs: number;
  /**
   * How long after its storage an executor checks a command on its log's first read (@haul/bus limits.commandFreshMs,
   * checkedOnFirstRead): no step is given up sooner than that (or half its timeout) after its store (deadlinesOf).
   */
  commandFreshMs: number;
  /** The transfers' latest reports, read by the coordinator before a Tick (none: only the intents count). */
  transfers?: TransferReports;
  /** When the coordinator stored each command (deadlines.ts SentAt): a step's time counts from then, if later. */
  sentAt?: SentAt;
};

export type DecideInput =
  | {
      kind: 'RequestMigration';
      migrationId: string;
      request: MigrateRequest;
      imageRoots: { source: string; target: string };
      /** The verified signer of the request (none when unsigned or insecure). */
      requestedBy?: string;
      meta: DecideMeta;
    }
  | { kind: 'Advance'; meta: DecideMeta }
  /** `requestedBy`: the verified signer of the cancel request (none when unsigned or insecure). */
  | { kind: 'Cancel'; reason: string; requestedBy?: string; meta: DecideMeta }
  | { kind: 'Tick'; meta: DecideMeta }
  | OperatorInput;

/** decide(input, state) → events. Pure: the same input and state always give the same events. */
export function decide(input: DecideInput, state: MigrationState): MigrationEvent[] {
  switch (input.kind) {
    case 'RequestMigration':
      return requestMigration(input, state);
    case 'Cancel':
      return cancel(input, state);
    case 'Tick':
      return givenUp(input.meta, state);
    case 'Advance':
      return advance(input.meta, state);
    case 'Retry':
      return retry(input, state);
    case 'Resolve':
      return resolve(input, state);
  }
}

/** Decide, apply, decide again until nothing new comes out: one round trip per outside event. */
export function decideUntilStable(
  input: DecideInput,
  state: MigrationState,
): { events: MigrationEvent[]; state: MigrationState } {
  let s = state;
  const all: MigrationEvent[] = [];
  let next = decide(input, s);
  // A tick that finds no timeout still advances: a decision missed for any reason (an event parked, a coordinator
  // gone between an outcome and its decision) is made at the next tick instead of never.
  if (next.length === 0 && input.kind === 'Tick') next = decide({ kind: 'Advance', meta: input.meta }, s);
  for (let round = 0; next.length > 0 && round < 50; round++) {
    for (const e of next) s = evolve(s, e);
    all.push(...next);
    next = decide({ kind: 'Advance', meta: input.meta }, s);
  }
  return { events: all, state: s };
}

function requestMigration(
  input: Extract<DecideInput, { kind: 'RequestMigration' }>,
  s: MigrationState,
): MigrationEvent[] {
  if (s.migrationId)
    throw new CommandRejectedError(errorCodes.migrationExists, `migration ${s.migrationId} already exists`);
  const r = input.request;
  if (r.source === r.target)
    throw new CommandRejectedError(errorCodes.sameNode, 'source and target are the same node', 'target');
  if (withRequestDefaults(r).mode === 'restart' && r.maxDowntimeMs !== undefined) {
    throw new CommandRejectedError(
      errorCodes.badRequest,
      'a downtime budget applies to live migration only',
      'maxDowntimeMs',
    );
  }
  const seeded: MigrationState = { ...s, migrationId: input.migrationId };
  return [
    envelope(
      seeded,
      input.meta,
      'MigrationRequested',
      {
        request: r,
        imageRoots: input.imageRoots,
        ...askedBy(input.requestedBy),
      },
      `${input.migrationId}:requested`,
    ),
  ];
}

function cancel(input: Extract<DecideInput, { kind: 'Cancel' }>, s: MigrationState): MigrationEvent[] {
  if (!s.migrationId)
    throw new CommandRejectedError(errorCodes.unknownMigration, 'no such migration', 'migrationId');
  if (s.terminal)
    throw new CommandRejectedError(errorCodes.migrationFinished, `migration already ${s.terminal}`);
  if (s.committed)
    throw new CommandRejectedError(
      errorCodes.cancelTooLate,
      'past the commit point: the CT runs on the target; rolling forward',
    );
  if (s.rollback) throw new CommandRejectedError(errorCodes.alreadyRollingBack, rollingBack(s));
  if (s.cancelRequested !== undefined) return [];
  // The commit is under way: a cancel accepted now would be overtaken by it (the restore won its fence; restart mode's
  // start has no fence), so it is refused. Before RestoreStarted, the restore's fence refuses a cancelled migration.
  if (s.restoreStarted)
    throw new CommandRejectedError(
      errorCodes.cancelTooLate,
      "the target's restore has started: it commits, or it fails and the migration rolls back",
    );
  if (stepOf(s, 'startTarget')?.status === 'intended')
    throw new CommandRejectedError(
      errorCodes.cancelTooLate,
      'the CT is being started on the target: it commits, or it fails and the migration rolls back',
    );
  return [
    envelope(s, input.meta, 'CancelRequested', { reason: input.reason, ...askedBy(input.requestedBy) }),
  ];
}

/** What a cancel of a migration in rollback is told: why it rolls back, and what waits for an operator if stuck. */
function rollingBack(s: MigrationState): string {
  const why = `already rolling back: ${s.rollback?.reason ?? 'rollback started'}`;
  const st = s.stuck;
  if (!st) return `${why}; it ends rolled back by itself`;
  const err = st.lastError ? ` (${st.lastError.code}: ${st.lastError.message})` : '';
  const mid = s.migrationId ?? '';
  return (
    `${why}; stuck on ${st.action}${err}: fix the cause and run haul retry ${mid}, ` +
    `or do it by hand and run haul resolve ${mid} --action ${st.action}`
  );
}

/**
 * Steps the coordinator stops waiting for, recorded as failed: any step past its timeout, and a transfer that for
 * `stallMs` neither moved bytes nor reported that it waits on purpose (so a dead or wedged streamer costs seconds,
 * not the 30-minute stream timeout, while a transfer held behind a final-dump transfer is left alone). Rollback
 * then treats the step as in doubt and reconciles it by inspection.
 */
function givenUp(meta: DecideMeta, s: MigrationState): MigrationEvent[] {
  if (s.terminal) return [];
  const now = Date.parse(meta.now);
  return inFlight(s).flatMap((r) => {
    const d = deadlinesOf(
      s,
      r,
      { stallMs: meta.stallMs, freshMs: meta.commandFreshMs },
      meta.transfers,
      meta.sentAt,
    );
    if (now > d.timeoutAt)
      return [
        failedBy(
          s,
          meta,
          r,
          'timeout',
          d.behind
            ? `never began: ${d.behind.key} before it on its agent's queue gave no result within ${d.behind.command.timeoutMs} ms`
            : `gave no result within ${r.command.timeoutMs} ms`,
        ),
      ];
    if (d.stallAt !== undefined && now > d.stallAt)
      return [failedBy(s, meta, r, 'stalled', `moved no bytes and reported no wait for ${meta.stallMs} ms`)];
    return [];
  });
}

const givenUpBy = { timeout: errorCodes.stepTimeout, stalled: errorCodes.streamStalled } as const;

/** The coordinator's StepFailed for a step it stopped waiting for. */
function failedBy(
  s: MigrationState,
  meta: DecideMeta,
  r: StepRecord,
  why: keyof typeof givenUpBy,
  what: string,
): MigrationEvent {
  return coordinatorsFailure(s, meta, r, why, {
    code: givenUpBy[why],
    message: `${r.key} ${what}`,
    retryable: true,
  });
}

/** A StepFailed of the coordinator's for the step `r`'s command, with `error`: its event id says why, so it is written once. */
function coordinatorsFailure(
  s: MigrationState,
  meta: DecideMeta,
  r: StepRecord,
  why: string,
  error: ErrorInfo,
): MigrationEvent {
  return envelope(
    s,
    meta,
    'StepFailed',
    {
      commandId: r.command.commandId,
      step: r.step,
      node: r.command.node,
      attempt: r.command.attempt,
      error,
    },
    `${r.command.commandId}:${why}`,
  );
}

/**
 * The coordinator's StepFailed for a step its executor refused (a CommandRejected the fold takes as the step's
 * failure, evolve.ts), as for a step it gave up: every reader of the log sees the step end in a step outcome, not
 * only a fold that knows the rejection rules of this version. An agent whose fold is older waits for an outcome of
 * each earlier command of the migration before it runs the next (runsBefore), and an operator tailing the events sees
 * the step fail. Written once: the fold notes where the step's outcome came (outcomeOrder), and its event id says
 * why.
 */
function refusalsRecorded(meta: DecideMeta, s: MigrationState): MigrationEvent[] {
  return Object.values(s.steps)
    .filter((r) => r.rejected === true && r.status === 'failed' && r.outcomeOrder === undefined)
    .map((r) => coordinatorsFailure(s, meta, r, 'rejected', r.error!));
}

function intend(
  s: MigrationState,
  meta: DecideMeta,
  step: StepName,
  subject: string,
  args: Record<string, unknown>,
  role?: 'source' | 'target',
  attempt = 1,
): MigrationEvent {
  const spec = stepTable[step];
  const req = s.request!;
  const node = (role ?? spec.role) === 'source' ? req.source : req.target;
  const commandId = commandIdFor(s.migrationId!, step, subject, attempt);
  const cmd = {
    commandId,
    migrationId: s.migrationId!,
    node,
    executor: spec.executor,
    attempt,
    step,
    args,
    timeoutMs: meta.timeoutsMs[spec.timeout],
  } as unknown as StepCommand;
  return envelope(s, meta, 'StepIntended', cmd, `${commandId}:intent`);
}

function advance(meta: DecideMeta, s: MigrationState): MigrationEvent[] {
  if (!s.migrationId || !s.request || s.terminal) return [];
  const refused = refusalsRecorded(meta, s);
  if (refused.length > 0) return refused;
  if (s.rollback) return runPlan(meta, s, planRollbackOf(s), 'rollback');
  if (s.committed) {
    const release = forwardAfterCommit(meta, s);
    if (release) return release;
    return runPlan(meta, s, planCleanupOf(s), 'cleanup');
  }
  const trigger = rollbackTrigger(s);
  if (trigger) return [envelope(s, meta, 'RollbackStarted', trigger)];
  return s.request.mode === 'live' ? forwardLive(meta, s) : forwardRestart(meta, s);
}

/** Why the migration must roll back now, if it must. */
function rollbackTrigger(s: MigrationState): { reason: string; cause?: ErrorInfo } | undefined {
  const failed = Object.values(s.steps).find(
    (r) => r.status === 'failed' && stepTable[r.step].kind === 'forward',
  );
  if (failed) {
    const cause = failed.error ? { cause: failed.error } : {};
    // A restore that failed before RestoreStarted after an operator's cancel (its fence refuses a cancelled
    // migration): the rollback is the cancel's, and says so.
    if (s.cancelRequested !== undefined && failed.step === 'restore' && !s.restoreStarted)
      return { reason: `cancelled: ${s.cancelRequested}`, ...cause };
    return { reason: `${failed.key} failed`, ...cause };
  }
  if (s.resumedOnSource) return { reason: 'the source resumed the CT after its frozen lease expired' };
  if (s.cancelRequested !== undefined) {
    const restore = stepOf(s, 'restore') ?? stepOf(s, 'startTarget');
    if (restore?.status === 'intended') return undefined; // wait: the commit may already be happening
    return { reason: `cancelled: ${s.cancelRequested}` };
  }
  const pre = s.preflight;
  if (pre.source && pre.target) {
    const problem = checkPreflight(s.request!, pre.source, pre.target);
    if (problem) return { reason: problem.message, cause: problem };
  }
  const abort = s.decisions.find((d) => d.decision === 'abort');
  if (abort) {
    return {
      reason: `downtime budget of ${abort.numbers.maxDowntimeMs} ms never fits (predicted ${abort.numbers.predictedFrozenMs ?? '?'} ms)`,
      cause: { code: errorCodes.downtimeBudget, message: 'the predicted downtime never fit the budget' },
    };
  }
  return undefined;
}

/** Run the next action of a rollback or cleanup plan, one at a time, retrying failures up to maxAttempts. */
function runPlan(
  meta: DecideMeta,
  s: MigrationState,
  plan: PlannedAction[],
  what: 'rollback' | 'cleanup',
): MigrationEvent[] {
  const next = plan[0];
  if (what === 'rollback' && !mayCompensateNow(s, next)) return [];
  if (!next) {
    return what === 'rollback'
      ? [envelope(s, meta, 'MigrationRolledBack', rolledBackData(s, meta))]
      : [envelope(s, meta, 'MigrationCompleted', { stats: deriveStatsOf(s, meta.now) })];
  }
  const rec = s.steps[next.key];
  if (rec?.status === 'intended') return [];
  if (rec && exhausted(s, rec, meta.maxAttempts)) return stall(s, meta, rec, what);
  const attempt = rec ? rec.command.attempt + 1 : 1;
  return [intend(s, meta, next.step, next.subject, next.args, next.role, attempt)];
}

/**
 * Never compensate while a forward step may still be running: wait for its result (or its timeout) — a plan made
 * before an effect is known would miss it. One exception keeps a frozen CT from waiting on a long copy: while only
 * transfers run (they read the source and write image folders and disk copies on the target, which later actions
 * remove), the source's own actions — restore its shared disks, resume or start its CT — go ahead. No restore can
 * start meanwhile (the rollback fences it out), and the transfers' compensations wait for their outcomes.
 */
function mayCompensateNow(s: MigrationState, next: PlannedAction | undefined): boolean {
  const running = inFlight(s).filter((r) => stepTable[r.step].kind === 'forward');
  if (running.length === 0) return true;
  return (
    next !== undefined &&
    bringsSourceBack(next.step) &&
    running.every((r) => stepTable[r.step].executor === 'streamer')
  );
}

function rolledBackData(
  s: MigrationState,
  meta: DecideMeta,
): Extract<MigrationEvent, { type: 'MigrationRolledBack' }>['data'] {
  const d: Extract<MigrationEvent, { type: 'MigrationRolledBack' }>['data'] = {
    reason: s.rollback?.reason ?? 'rolled back',
    stats: deriveStatsOf(s, meta.now),
  };
  if (s.rollback?.cause) d.cause = s.rollback.cause;
  return d;
}

/**
 * After the commit point, the steps that only roll forward (retried, never undone): the target takes the CT's
 * ownership — its HA resource, its registration and `.owner` — and, in live mode, the source confirms the dump so
 * CRIU kills the frozen tasks. Both at once (different nodes). The source lets go of the CT (unregisters it and
 * releases its lock) only in the cleanup, which starts once both succeeded: at every moment the CT is registered
 * where it runs, or on both nodes while the handover is under way, never on none.
 */
function forwardAfterCommit(meta: DecideMeta, s: MigrationState): MigrationEvent[] | undefined {
  const steps: StepName[] =
    s.request!.mode === 'live' ? ['takeOwnership', 'releaseSource'] : ['takeOwnership'];
  const out: MigrationEvent[] = [];
  let pending = false;
  let outOfAttempts: StepRecord | undefined;
  for (const step of steps) {
    const rec = stepOf(s, step);
    if (rec?.status === 'succeeded') continue;
    pending = true;
    if (rec?.status === 'intended') continue;
    // One step out of attempts does not hold the other back: that one is sent, and the stall recorded beside it.
    // Before, the stall was returned alone, and an operator's retry of one step was lost to the other's stall.
    if (rec && exhausted(s, rec, meta.maxAttempts)) {
      outOfAttempts ??= rec;
      continue;
    }
    const attempt = rec ? rec.command.attempt + 1 : 1;
    out.push(intend(s, meta, step, once, { ctid: s.request!.ctid }, stepTable[step].role, attempt));
  }
  if (!pending) return undefined;
  return outOfAttempts ? [...out, ...stall(s, meta, outOfAttempts, 'release')] : out;
}

const ok = (r: StepRecord | undefined) => r?.status === 'succeeded';
const has = (s: MigrationState, key: string) => s.steps[key] !== undefined;

function preflightSteps(meta: DecideMeta, s: MigrationState): MigrationEvent[] | undefined {
  const req = s.request!;
  // No shared disks in the arguments: each agent finds the CT's disks itself, and the core checks the request's
  // declared list against what both found (checkDisks).
  const args = { ctid: req.ctid, mode: req.mode };
  const out: MigrationEvent[] = [];
  if (!has(s, stepKey('preflightTarget')))
    out.push(intend(s, meta, 'preflightTarget', once, { ...args, imageDir: s.imageDirs!.target }));
  if (!has(s, stepKey('preflightSource')))
    out.push(intend(s, meta, 'preflightSource', once, { ...args, imageDir: s.imageDirs!.source }));
  // The CT lock for the migration's life, as vzmigrate takes it before anything else (after the source's preflight
  // in the source agent's queue): a concurrent vzctl without --skiplock is refused until the migration ends.
  if (!has(s, stepKey('lockSource'))) out.push(intend(s, meta, 'lockSource', once, { ctid: req.ctid }));
  if (out.length > 0) return out;
  const all: StepName[] = ['preflightTarget', 'preflightSource', 'lockSource'];
  if (!all.every((step) => ok(stepOf(s, step)))) return [];
  return undefined;
}

/**
 * A live migration forward, phase by phase: the preflights, the pre-dump iterations (each decided on its numbers), the
 * stream of each finished iteration and the local disks' live passes beside them, the final dump once all of them
 * allow it, then the frozen window. Each phase adds what can be intended now to `out`.
 */
function forwardLive(meta: DecideMeta, s: MigrationState): MigrationEvent[] {
  const pre = preflightSteps(meta, s);
  if (pre) return pre;
  const out: MigrationEvent[] = [];
  const dumps = Object.values(s.steps)
    .filter((r) => r.step === 'preDump')
    .sort((a, b) => Number(a.subject) - Number(b.subject));
  const iterations = preDumpIterations(meta, s, dumps, out);
  if (iterations === 'deciding') return out;
  const done = dumps.filter((r) => r.status === 'succeeded');
  const streamsDone = streamIterations(meta, s, done, out);
  // Local disks are copied while the CT runs, beside the pre-dumps; only their last pass waits for the freeze.
  const disksReady = liveDiskPasses(meta, s, out);
  if (iterations === 'iterating') return out;
  const fd = stepOf(s, 'finalDump');
  // Never freeze while an earlier stream is unfinished: the frozen window would wait for it (or for its stall).
  // Nor before every local disk's live passes converged: the frozen window holds only their last pass.
  if (!fd && streamsDone && disksReady) out.push(finalDump(meta, s, done.length));
  if (fd?.status === 'succeeded') frozenWindow(meta, s, done.length, streamsDone, out);
  return out;
}

/**
 * img/k+1 under each node's image folder, as P.Haul lays them out: the images of pre-dump k, and after k pre-dumps
 * the final dump's.
 */
const dumpDirs = (s: MigrationState, k: number) => ({
  source: `${s.preflight.source!.imageDir}/${k + 1}`,
  target: `${s.preflight.target!.imageDir}/${k + 1}`,
});

/**
 * Pre-dump iterations: img/1, img/2, ... with parent ../n-1, as P.Haul lays them out. Each finished one is decided
 * (IterationDecided, alone in its decision) before the next is intended. `final` once a decision says final dump (or
 * when this migration pre-dumps not at all).
 */
function preDumpIterations(
  meta: DecideMeta,
  s: MigrationState,
  dumps: StepRecord[],
  out: MigrationEvent[],
): 'iterating' | 'deciding' | 'final' {
  const req = s.request!;
  const src = s.preflight.source!;
  if (!usesPreDump(req, src)) return 'final';
  const workDir = `${src.imageDir}/work`;
  const last = dumps[dumps.length - 1];
  if (!last) {
    const args = { ctid: req.ctid, iteration: 0, imageDir: `${src.imageDir}/1`, workDir };
    out.push(intend(s, meta, 'preDump', '0', args));
    return 'iterating';
  }
  if (last.status !== 'succeeded') return 'iterating';
  const i = Number(last.subject);
  const decided = s.decisions.find((d) => d.iteration === i);
  if (!decided) {
    const verdict = decideConvergence(convergenceInput(s, dumps, i, req.maxIterations));
    out.push(envelope(s, meta, 'IterationDecided', { iteration: i, ...verdict }));
    return 'deciding';
  }
  if (decided.decision === 'final-dump') return 'final';
  if (decided.decision === 'continue' && !has(s, stepKey('preDump', String(i + 1))))
    out.push(
      intend(s, meta, 'preDump', String(i + 1), {
        ctid: req.ctid,
        iteration: i + 1,
        imageDir: `${src.imageDir}/${i + 2}`,
        prevImageDir: `../${i + 1}`,
        workDir,
      }),
    );
  return 'iterating';
}

/**
 * Stream each finished pre-dump in order, overlapping with the next pre-dump: one stream at a time, the next once
 * the one before succeeded. True when every finished pre-dump's images are on the target.
 */
function streamIterations(
  meta: DecideMeta,
  s: MigrationState,
  done: StepRecord[],
  out: MigrationEvent[],
): boolean {
  const req = s.request!;
  for (const r of done) {
    const st = stepOf(s, 'streamImages', r.subject);
    if (st?.status === 'succeeded') continue;
    if (!st) {
      const dirs = dumpDirs(s, Number(r.subject));
      out.push(
        intend(s, meta, 'streamImages', r.subject, streamArgs(req, dirs.source, dirs.target, 'iteration')),
      );
    }
    return false;
  }
  return true;
}

/** The final dump after `n` pre-dumps (the CT frozen from here, its lease sized by what is left to move). */
function finalDump(meta: DecideMeta, s: MigrationState, n: number): MigrationEvent {
  const req = s.request!;
  const src = s.preflight.source!;
  const args: Record<string, unknown> = {
    ctid: req.ctid,
    iteration: n,
    imageDir: dumpDirs(s, n).source,
    workDir: `${src.imageDir}/work`,
    leaseMs: req.frozenLeaseMs ?? frozenLeaseMs(leaseInput(s, meta.frozenLeaseMs)),
  };
  if (n > 0) args['prevImageDir'] = `../${n}`;
  return intend(s, meta, 'finalDump', once, args);
}

/**
 * The frozen window: every step that can run now is sent now, in one decision — each shared disk's whole
 * preparation, the final images and the local disks — and the restore once all succeeded. One round trip through the
 * coordinator per window instead of one per step; every step still has its intent and its outcome.
 */
function frozenWindow(
  meta: DecideMeta,
  s: MigrationState,
  n: number,
  streamsDone: boolean,
  out: MigrationEvent[],
): void {
  const req = s.request!;
  const dirs = dumpDirs(s, n);
  const { shared, local } = migrationDisks(s);
  let ready = true;
  for (const d of shared) if (!prepareSharedDisk(meta, s, d, out)) ready = false;
  const fstream = stepOf(s, 'streamImages', 'final');
  if (!fstream && streamsDone)
    out.push(intend(s, meta, 'streamImages', 'final', streamArgs(req, dirs.source, dirs.target, 'final')));
  if (fstream?.status !== 'succeeded') ready = false;
  // Local disks beside the final images: the streamer runs several transfers at once.
  if (!copyLocalDisks(meta, s, local, out)) ready = false;
  if (ready && !has(s, stepKey('restore')))
    out.push(
      intend(s, meta, 'restore', once, {
        ctid: req.ctid,
        imageDir: dirs.target,
        workDir: `${s.preflight.target!.imageDir}/work`,
      }),
    );
}

/**
 * A shared disk's preparation in P.Haul's order — back up the descriptor, snapshot the origin, snapshot the copy —
 * intended all at once: the source agent runs its commands one at a time in the order they were sent, and a step
 * whose predecessor failed finds its precondition missing on the host and refuses (the backup copy, the origin's
 * snapshot), so the chain needs no round trip through the coordinator between its steps. True when all succeeded.
 */
function prepareSharedDisk(meta: DecideMeta, s: MigrationState, d: DiskRef, out: MigrationEvent[]): boolean {
  const chain: [StepName, Record<string, unknown>][] = [
    ['backupDescriptor', { ddxml: d.ddxml }],
    ['snapshotOrigin', { ddxml: d.ddxml, guid: originGuid(s.migrationId!, d.index) }],
    ['snapshotCopy', { ddxml: d.ddxml, guid: copyGuid(s.migrationId!, d.index) }],
  ];
  for (const [step, args] of chain)
    if (!has(s, stepKey(step, String(d.index)))) out.push(intend(s, meta, step, String(d.index), args));
  return chain.every(([step]) => ok(stepOf(s, step, String(d.index))));
}

/**
 * Copy every local (non-shared) disk at once (the streamer runs several transfers together); true when all are
 * copied. In live mode this is each disk's frozen pass, after its live passes (liveDiskPasses); in restart mode the
 * one copy of a disk nobody uses any more.
 */
function copyLocalDisks(
  meta: DecideMeta,
  s: MigrationState,
  local: DiskRef[],
  out: MigrationEvent[],
): boolean {
  const live = s.request!.mode === 'live';
  for (const d of local) {
    if (has(s, stepKey('copyLocalDisk', String(d.index)))) continue;
    const args = streamArgs(s.request!, ...diskDirs(s, d), 'final');
    if (live) {
      const next = nextLivePass(s, d.index);
      if (!('ready' in next)) continue; // an older log, or a pass still running: never frozen without it
      args['pass'] = { index: next.ready, final: true };
    }
    out.push(intend(s, meta, 'copyLocalDisk', String(d.index), args));
  }
  return local.every((d) => ok(stepOf(s, 'copyLocalDisk', String(d.index))));
}

/**
 * The live passes of every local disk, each intended when the one before it succeeded (a failed one starts the
 * rollback); true when every disk is ready for its frozen pass.
 */
function liveDiskPasses(meta: DecideMeta, s: MigrationState, out: MigrationEvent[]): boolean {
  let ready = true;
  for (const d of migrationDisks(s).local) {
    const next = nextLivePass(s, d.index);
    if ('ready' in next) continue;
    ready = false;
    if (!('send' in next)) continue;
    const args = streamArgs(s.request!, ...diskDirs(s, d), 'iteration');
    args['pass'] = { index: next.send, final: false };
    out.push(intend(s, meta, 'copyLocalDisk', livePassSubject(d.index, next.send), args));
  }
  return ready;
}

/** A local disk's folder on the source and where its copy goes on the target. */
function diskDirs(s: MigrationState, d: DiskRef): [string, string] {
  const from = d.ddxml.slice(0, d.ddxml.lastIndexOf('/'));
  const toXml = targetDdxmlOf(d, s.preflight.source?.vePrivate, s.preflight.target?.vePrivate);
  return [from, toXml.slice(0, toXml.lastIndexOf('/'))];
}

function streamArgs(
  req: MigrateRequest,
  sourceDir: string,
  targetDir: string,
  priority: 'final' | 'iteration',
): Record<string, unknown> {
  const a: Record<string, unknown> = { toNode: req.target, sourceDir, targetDir, priority };
  if (req.bandwidthLimitMBps !== undefined) a['bandwidthLimitMBps'] = req.bandwidthLimitMBps;
  return a;
}

function forwardRestart(meta: DecideMeta, s: MigrationState): MigrationEvent[] {
  const pre = preflightSteps(meta, s);
  if (pre) return pre;
  const req = s.request!;
  const stop = stepOf(s, 'stopSource');
  if (!stop) return [intend(s, meta, 'stopSource', once, { ctid: req.ctid })];
  if (!ok(stop)) return [];
  const out: MigrationEvent[] = [];
  if (!copyLocalDisks(meta, s, migrationDisks(s).local, out)) return out;
  if (!has(s, stepKey('startTarget'))) out.push(intend(s, meta, 'startTarget', once, { ctid: req.ctid }));
  return out;
}

/**
 * What the frozen lease is derived from: the last pre-dump's image bytes (convergence stopped because the next dump
 * would be about as large or smaller), with each local disk's frozen pass (about as much as its last live pass moved:
 * after four passes a disk goes to the freeze whatever its last one moved, disk-passes.ts), which streams beside the
 * final images, and the rate of the last transfer, or the request's bandwidth limit before any. Without the disks, a
 * disk written hard had its frozen pass cut by a lease made for the memory alone, on every attempt.
 * Without a pre-dump (`preDump: off`) the final dump holds the whole resident memory the source's preflight
 * inspected, and no transfer has measured the link: the request's bandwidth limit, else the assumed link rate of a
 * check (assumedSpeeds), so that a large CT's only transfer is not cut by a lease made for a small one.
 */
function leaseInput(s: MigrationState, floorMs: number): FrozenLeaseInput {
  const done = (step: string) =>
    Object.values(s.steps)
      .filter((r) => r.step === step && r.status === 'succeeded')
      .sort((a, b) => b.order - a.order)[0];
  const input: FrozenLeaseInput = { floorMs };
  const dump = done('preDump');
  const memory = dump ? (dump.result as DumpResult).bytes : s.preflight.source?.memoryBytes;
  const disks = migrationDisks(s).local.map(
    (d) =>
      (
        livePassesOf(s, d.index)
          .filter((r) => r.status === 'succeeded')
          .at(-1)?.result as StreamResult | undefined
      )?.bytes ?? 0,
  );
  if (memory !== undefined) input.predictedBytes = memory + disks.reduce((a, b) => a + b, 0);
  const stream = done('streamImages');
  const sr = stream?.result as StreamResult | undefined;
  if (sr && sr.durationMs > 0) input.bytesPerSec = sr.bytes / (sr.durationMs / 1000);
  else if (s.request?.bandwidthLimitMBps !== undefined)
    input.bytesPerSec = s.request.bandwidthLimitMBps * 1e6;
  else if (!dump) input.bytesPerSec = assumedSpeeds.linkBytesPerSec;
  return input;
}

/** The numbers the convergence policy needs, measured from the log (times come from the events). */
function convergenceInput(s: MigrationState, dumps: StepRecord[], i: number, maxIterations: number) {
  const cur = dumps.find((r) => Number(r.subject) === i)!;
  const prev = dumps.find((r) => Number(r.subject) === i - 1);
  const res = cur.result as DumpResult;
  const input: Parameters<typeof decideConvergence>[0] = {
    iteration: i,
    pagesWritten: res.pagesWritten,
    maxIterations,
  };
  const req = s.request!;
  if (req.maxDowntimeMs !== undefined)
    input.budget = { maxDowntimeMs: req.maxDowntimeMs, policy: req.downtimePolicy };
  if (prev?.status === 'succeeded') {
    input.prevPagesWritten = (prev.result as DumpResult).pagesWritten;
    const between = Date.parse(cur.intendedAt) - Date.parse(prev.intendedAt);
    if (between > 0) input.dirtyPagesPerSec = res.pagesWritten / (between / 1000);
  }
  input.iterationMs = res.durationMs;
  if (res.durationMs > 0) input.dumpBytesPerSec = res.bytes / (res.durationMs / 1000);
  const streams = Object.values(s.steps).filter((r) => r.step === 'streamImages' && r.status === 'succeeded');
  const lastStream = streams.sort((a, b) => b.order - a.order)[0];
  if (lastStream) {
    const sr = lastStream.result as StreamResult;
    if (sr.durationMs > 0) input.bandwidthBytesPerSec = sr.bytes / (sr.durationMs / 1000);
  }
  return input;
}

/**
 * The convergence numbers of a migration's last pre-dump that had a predecessor (the dirty rate needs two dumps),
 * as the decider measured them: what a later check predicts the CT's downtime from. Undefined without such a pair.
 */
export function lastMeasuredConvergence(s: MigrationState): ConvergenceInput | undefined {
  const dumps = Object.values(s.steps)
    .filter((r) => r.step === 'preDump' && r.status === 'succeeded')
    .sort((a, b) => Number(a.subject) - Number(b.subject));
  const last = dumps.at(-1);
  if (!last || Number(last.subject) < 1 || !s.request) return undefined;
  const input = convergenceInput(s, dumps, Number(last.subject), s.request.maxIterations);
  return input.dirtyPagesPerSec === undefined ? undefined : input;
}

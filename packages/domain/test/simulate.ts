/**
 * Drive the pure core against the host model: a simulated agent executes each intended command on the model and
 * appends its result, faults are injected where the scenario says, and the coordinator's loop (decideUntilStable)
 * runs after every event. Everything is deterministic for a given scenario.
 */
import {
  executorServices,
  type MigrateRequest,
  type MigrationEvent,
  type StepCommand,
  type StepName,
} from '@haul/schemas';
import { decideUntilStable, type DecideInput, type DecideMeta } from '../src/decide.ts';
import { evolve } from '../src/evolve.ts';
import { mayResumeSource, mayStartRestore } from '../src/fencing.ts';
import { initialState, inFlight, stepOf, type MigrationState, type StepRecord } from '../src/state.ts';
import { stepTable } from '../src/steps.ts';
import { apply, newHost, refusal, type HostModel, type Scenario } from './host-model.ts';
import { CommandRejectedError, errorCodes } from '../src/errors.ts';

export type Fault =
  | { kind: 'none' }
  /** The nth invocation of `step` fails (exit code) — optionally after leaving a partial effect. */
  | { kind: 'fail'; step: StepName; nth: number; partial: boolean }
  /** The agent dies during the nth invocation of `step`: maybe the effect happened, no result ever comes. */
  | { kind: 'crash'; step: StepName; nth: number; partial: boolean }
  /** An operator cancels after `after` events. */
  | { kind: 'cancel'; after: number }
  /** The source's frozen lease expires after `after` events past the final dump. */
  | { kind: 'lease'; after: number }
  /** The target reboots `after` events past its preflight, before any restore started: its boot id changes. */
  | { kind: 'reboot'; after: number };

/** Besides the scenario's fault, the first `times` invocations of `step` fail (or are refused). */
export type AlsoFail = { step: StepName; times: number; refused?: true };

export type SimScenario = Scenario & {
  mode: 'live' | 'restart';
  preDump: 'on' | 'off' | 'auto';
  fault: Fault;
  /** Which in-flight command runs next (index modulo the number in flight), consumed in turn. */
  picks: number[];
  maxDowntimeMs?: number;
  bandwidthLimitMBps?: number;
  /**
   * Besides `fault`: the first `times` invocations of `step` fail, whatever its kind (compensations, cleanup too);
   * `refused`: its executor refuses each of them (CommandRejected, not retryable) instead of running it.
   */
  alsoFail?: AlsoFail | AlsoFail[];
  /** The operator, asked when the migration waits for one (MigrationStuck): what to do, or nothing (stop there). */
  onStuck?: (s: MigrationState, host: HostModel, m: DecideMeta) => DecideInput | undefined;
};

export type SimResult = {
  events: MigrationEvent[];
  state: MigrationState;
  host: HostModel;
  terminal: MigrationEvent['type'] | undefined;
};

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

export function meta(nowMs: number): DecideMeta {
  return {
    now: new Date(nowMs).toISOString(),
    actor: { service: 'coordinator', node: 'coord' },
    timeoutsMs: { criu: 180_000, ploop: 120_000, vzctl: 180_000, stream: 1_800_000, quick: 30_000 },
    frozenLeaseMs: 60_000,
    maxAttempts: 3,
    stallMs: 30_000,
    commandFreshMs: 5_000,
  };
}

export const request = (
  sc: Pick<SimScenario, 'mode' | 'preDump' | 'sharedDisks' | 'maxDowntimeMs' | 'bandwidthLimitMBps'>,
): MigrateRequest => {
  const r: MigrateRequest = {
    requestId: 'req-1',
    ctid: '101',
    source: 'node-a',
    target: 'node-b',
    mode: sc.mode,
    preDump: sc.preDump,
    sharedDisks: Array.from({ length: sc.sharedDisks }, (_, i) => `/shared/disk${i}/DiskDescriptor.xml`),
  };
  if (sc.maxDowntimeMs !== undefined) r.maxDowntimeMs = sc.maxDowntimeMs;
  if (sc.bandwidthLimitMBps !== undefined) r.bandwidthLimitMBps = sc.bandwidthLimitMBps;
  return r;
};

/**
 * The in-flight commands that can run next: a node agent takes its commands one at a time in the order they were
 * sent (its queue), a streamer runs its transfers side by side. A crashed command never reports; the agent goes on
 * with the next one.
 */
function runnable(inflight: StepRecord[], crashed: Set<string>): StepRecord[] {
  const busy = new Set<string>();
  return [...inflight]
    .sort((a, b) => a.order - b.order)
    .filter((r) => {
      if (crashed.has(r.command.commandId)) return false;
      if (stepTable[r.step].executor !== 'agent') return true;
      if (busy.has(r.command.node)) return false;
      busy.add(r.command.node);
      return true;
    });
}

/** The outcome of `cmd` as its executor (the node agent, the image streamer) appends it, at `atMs`. */
export const executorOutcome = (
  cmd: StepCommand,
  type: 'StepSucceeded' | 'StepFailed',
  body: Record<string, unknown>,
  atMs: number,
): MigrationEvent =>
  ({
    eventId: `${cmd.commandId}:${type}`,
    migrationId: cmd.migrationId,
    type,
    actor: { service: executorServices[cmd.executor], node: cmd.node },
    time: new Date(atMs).toISOString(),
    schemaVersion: 1,
    data: { commandId: cmd.commandId, step: cmd.step, node: cmd.node, attempt: cmd.attempt, ...body },
  }) as MigrationEvent;

/** A fault-free live migration with pre-dumps (the specs' usual scenario), with the given changes. */
export const liveScenario = (changes: Partial<SimScenario> = {}): SimScenario => ({
  mode: 'live',
  sharedDisks: 1,
  localDisks: 1,
  pagesPerIteration: [100, 10],
  memTrack: true,
  preDump: 'auto',
  fault: { kind: 'none' },
  picks: [],
  ...changes,
});

export function simulate(sc: SimScenario): SimResult {
  const host = newHost(sc.sharedDisks, sc.localDisks);
  let now = T0;
  let state = initialState();
  const events: MigrationEvent[] = [];
  const push = (es: MigrationEvent[]) => {
    for (const e of es) {
      state = evolve(state, e);
      events.push(e);
    }
  };
  const run = (input: Parameters<typeof decideUntilStable>[0]) =>
    push(decideUntilStable(input, state).events);
  const agentEvent = (
    cmd: StepCommand,
    type: 'StepSucceeded' | 'StepFailed',
    body: Record<string, unknown>,
  ): MigrationEvent => executorOutcome(cmd, type, body, now);
  /** The command refused by its executor: parked, and the same arguments would be refused again. */
  const rejection = (cmd: StepCommand): MigrationEvent => ({
    eventId: `${cmd.commandId}:rejected`,
    migrationId: cmd.migrationId,
    type: 'CommandRejected',
    actor: { service: executorServices[cmd.executor], node: cmd.node },
    time: new Date(now).toISOString(),
    schemaVersion: 1,
    data: {
      commandId: cmd.commandId,
      error: { code: errorCodes.commandUnhandled, message: 'injected refusal' },
    },
  });
  const plain = (type: MigrationEvent['type'], data: unknown, node = 'node-a'): MigrationEvent =>
    ({
      eventId: `sim:${events.length}:${type}`,
      migrationId: 'mig-sim01',
      type,
      actor: { service: 'node-agent', node },
      time: new Date(now).toISOString(),
      schemaVersion: 1,
      data,
    }) as MigrationEvent;

  run({
    kind: 'RequestMigration',
    migrationId: 'mig-sim01',
    request: request(sc),
    imageRoots: { source: '/src/img', target: '/tgt/img' },
    meta: meta(now),
  });
  const seen: Partial<Record<StepName, number>> = {};
  const crashed = new Set<string>();
  let pick = 0;
  let leaseArmedAt: number | undefined;
  let rebootArmedAt: number | undefined;
  let rebooted = false;
  let cancelAsked = false;

  for (let guard = 0; guard < 2000 && !state.terminal; guard++) {
    now += 10;
    if (
      sc.fault.kind === 'cancel' &&
      !cancelAsked &&
      events.length >= sc.fault.after &&
      !state.committed &&
      !state.rollback
    ) {
      // Asked once. Refused while the commit is under way (the restore won its fence, or the CT is being started on
      // the target): the operator is told so, and the migration goes on.
      cancelAsked = true;
      try {
        run({ kind: 'Cancel', reason: 'operator', meta: meta(now) });
        continue;
      } catch (err) {
        if (!(err instanceof CommandRejectedError && err.code === errorCodes.cancelTooLate)) throw err;
      }
    }
    if (
      sc.fault.kind === 'reboot' &&
      !rebooted &&
      stepOf(state, 'preflightTarget')?.status === 'succeeded' &&
      !state.restoreStarted
    ) {
      rebootArmedAt ??= events.length;
      if (events.length >= rebootArmedAt + sc.fault.after) {
        host.targetBoot++;
        rebooted = true;
      }
    }
    if (sc.fault.kind === 'lease' && stepOf(state, 'finalDump')?.status === 'succeeded') {
      leaseArmedAt ??= events.length;
      if (
        events.length >= leaseArmedAt + sc.fault.after &&
        !state.resumedOnSource &&
        host.ct.source === 'frozen' &&
        mayResumeSource(events).ok &&
        !state.restoreStarted
      ) {
        push([plain('ResumedOnSource', { reason: 'lease-expired' })]);
        host.ct.source = 'running';
        run({ kind: 'Advance', meta: meta(now) });
        continue;
      }
    }
    const pending = runnable(inFlight(state), crashed);
    if (pending.length === 0) {
      if (crashed.size > 0) {
        now += 2_000_000; // the coordinator's step timeouts fire
        run({ kind: 'Tick', meta: meta(now) });
        crashed.clear();
        continue;
      }
      run({ kind: 'Advance', meta: meta(now) });
      if (inFlight(state).length === 0 && !state.terminal) {
        const act = state.stuck ? sc.onStuck?.(state, host, meta(now)) : undefined;
        if (!act) break; // stuck: reported by the caller
        run(act);
      }
      continue;
    }
    const rec = pending[(sc.picks[pick++ % Math.max(1, sc.picks.length)] ?? 0) % pending.length]!;
    const cmd = rec.command;
    const n = (seen[cmd.step] = (seen[cmd.step] ?? 0) + 1);
    const f = sc.fault;
    const hit = (f.kind === 'fail' || f.kind === 'crash') && f.step === cmd.step && f.nth === n;
    const also = [sc.alsoFail ?? []].flat().find((a) => a.step === cmd.step && n <= a.times);
    if (also) {
      push([
        also.refused
          ? rejection(cmd)
          : agentEvent(cmd, 'StepFailed', {
              error: { code: errorCodes.toolFailed, message: 'injected', exitCode: 1 },
            }),
      ]);
      run({ kind: 'Advance', meta: meta(now) });
      continue;
    }

    // The fences: the target appends RestoreStarted before restoring; the source appends ResumedOnSource before resuming.
    if (cmd.step === 'restore') {
      const v = mayStartRestore(events, { bootId: `boot-${host.targetBoot}`, commandId: cmd.commandId });
      if (!v.ok) {
        push([agentEvent(cmd, 'StepFailed', { error: { code: v.code, message: v.reason } })]);
        run({ kind: 'Advance', meta: meta(now) });
        continue;
      }
      push([plain('RestoreStarted', { commandId: cmd.commandId }, 'node-b')]);
    }
    if (cmd.step === 'resumeSource') {
      const v = mayResumeSource(events);
      if (!v.ok) {
        push([agentEvent(cmd, 'StepFailed', { error: { code: v.code, message: v.reason } })]);
        run({ kind: 'Advance', meta: meta(now) });
        continue;
      }
      if (!state.resumedOnSource)
        push([plain('ResumedOnSource', { reason: 'rollback', commandId: cmd.commandId })]);
    }

    // The agent checks a step's preconditions on the host before it changes anything (a chain step whose
    // predecessor failed, a preparation after the CT resumed): it refuses, and nothing happens.
    const refused = refusal(host, cmd);
    if (refused) {
      push([agentEvent(cmd, 'StepFailed', { error: { code: refused, message: 'refused by inspection' } })]);
      run({ kind: 'Advance', meta: meta(now) });
      continue;
    }

    if (hit && (f.kind === 'fail' || f.kind === 'crash')) {
      // fail: a partial effect, then a failure report; crash: the whole effect maybe, and no report ever.
      // A step whose failure leaves no effect (criu undoes a failed pre-dump itself) gets no partial effect.
      // A step whose failures leave none but those of some codes (a final dump after the freeze) fails with such a
      // code when it leaves one.
      const spec = stepTable[cmd.step];
      const leaves = f.partial && (f.kind === 'crash' || spec.failureMayLeaveEffect || !!spec.inDoubtCodes);
      if (leaves) apply(host, cmd, sc, f.kind === 'fail');
      const code = leaves && spec.inDoubtCodes ? spec.inDoubtCodes[0]! : errorCodes.toolFailed;
      if (f.kind === 'fail')
        push([agentEvent(cmd, 'StepFailed', { error: { code, message: 'injected', exitCode: 1 } })]);
      else crashed.add(cmd.commandId);
    } else {
      const result = apply(host, cmd, sc);
      push([agentEvent(cmd, 'StepSucceeded', { result })]);
    }
    run({ kind: 'Advance', meta: meta(now) });
  }
  const last = events.at(-1);
  const terminal =
    last && (last.type === 'MigrationCompleted' || last.type === 'MigrationRolledBack')
      ? last.type
      : undefined;
  return { events, state, host, terminal };
}

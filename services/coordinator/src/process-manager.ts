import type { NatsConnection } from '@nats-io/transport-node';
import {
  ConcurrencyConflictError,
  buckets,
  encodeJson,
  openBucket,
  sendCommand,
  stepTimeoutsMs,
  streamStallMs,
  type EventLog,
  type Logger,
} from '@haul/bus';
import {
  decideUntilStable,
  fold,
  initialState,
  inFlight,
  projectStatus,
  type DecideInput,
  type DecideMeta,
  type MigrationState,
} from '@haul/domain';
import type { MigrationEvent, StepCommand, Validators } from '@haul/schemas';
import { releaseAdmission } from './admission.ts';

export type CoordinatorSettings = { node: string; frozenLeaseMs: number; maxAttempts: number };

/**
 * The process manager: the only state it keeps is the log. For a migration it reads the log, folds it with the
 * core's evolve, asks decide what comes next, appends the new events with compare-and-set on the migration's
 * subject (so two coordinators never both decide from the same point), then sends the commands it intended.
 */
export function createProcessManager(
  nc: NatsConnection,
  validators: Validators,
  eventLog: EventLog,
  settings: CoordinatorSettings,
  log: Logger,
) {
  const chains = new Map<string, Promise<unknown>>();
  const active = new Set<string>();

  const meta = (): DecideMeta => ({
    now: new Date().toISOString(),
    actor: { service: 'coordinator', node: settings.node },
    timeoutsMs: { ...stepTimeoutsMs },
    frozenLeaseMs: settings.frozenLeaseMs,
    maxAttempts: settings.maxAttempts,
    stallMs: streamStallMs,
  });

  /** Run one migration's work strictly one at a time in this process. */
  const serial = <T>(mid: string, fn: () => Promise<T>): Promise<T> => {
    const prev = chains.get(mid) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    chains.set(
      mid,
      next.catch(() => undefined),
    );
    return next;
  };

  async function load(mid: string): Promise<{ state: MigrationState; lastSeq: number }> {
    const { events, lastSeq } = await eventLog.read(mid);
    return {
      state: fold(
        events.map((e) => e.event),
        initialState(),
      ),
      lastSeq,
    };
  }

  /**
   * Append decided events with compare-and-set, one after the other. Returns the events that made it into the log
   * (a prefix of `events`) and whether all did: a writer that loses the race part-way has still appended a prefix,
   * and whatever commands that prefix intended must be sent like any others.
   */
  async function appendAll(
    events: MigrationEvent[],
    lastSeq: number,
  ): Promise<{ appended: MigrationEvent[]; complete: boolean; lastSeq: number }> {
    let seq = lastSeq;
    const appended: MigrationEvent[] = [];
    for (const e of events) {
      try {
        seq = (await eventLog.append(e, { expectedLastSeq: seq, msgId: e.eventId })).seq;
        appended.push(e);
      } catch (err) {
        if (err instanceof ConcurrencyConflictError) return { appended, complete: false, lastSeq: seq };
        throw err;
      }
    }
    return { appended, complete: true, lastSeq: seq };
  }

  async function send(cmds: StepCommand[]): Promise<void> {
    for (const c of cmds) await sendCommand(nc, validators, c);
  }

  async function project(state: MigrationState, lastSeq: number): Promise<void> {
    const status = projectStatus(state, lastSeq);
    if (!status) return;
    const kv = await openBucket(nc, buckets.status);
    await kv.put(status.migrationId, encodeJson(status));
    if (state.terminal) {
      active.delete(status.migrationId);
      // Its CT and nodes are free for the next admission (if this crashes first, the admission reaper frees them).
      await releaseAdmission(nc, log, status.migrationId);
    } else active.add(status.migrationId);
  }

  const advance = (): DecideInput => ({ kind: 'Advance', meta: meta() });

  /** Decide and append until the log and the decision agree; send what was intended. Run inside serial(). */
  async function decideAndAppend(
    mid: string,
    input: (s: MigrationState) => DecideInput,
  ): Promise<MigrationState> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const { state, lastSeq } = await load(mid);
      if (!state.migrationId) return state;
      const { events, state: next } = decideUntilStable(input(state), state);
      if (events.length === 0) {
        await project(state, lastSeq);
        return state;
      }
      const { appended, complete, lastSeq: seq } = await appendAll(events, lastSeq);
      await send(intendedCommands(appended));
      if (!complete) continue;
      for (const e of events)
        log.info(
          {
            migrationId: mid,
            type: e.type,
            ...(e.type === 'StepIntended' ? { step: e.data.step, node: e.data.node } : {}),
          },
          'decided',
        );
      await project(next, seq);
      return next;
    }
    throw new Error(`${mid}: lost the compare-and-set 20 times in a row`);
  }

  function step(mid: string, input: (s: MigrationState) => DecideInput = advance): Promise<MigrationState> {
    return serial(mid, () => decideAndAppend(mid, input));
  }

  /**
   * Advance a migration because something happened. While an advance of it is queued and has not started, a new
   * one joins it: it will read the log after both events, so one decision covers both.
   */
  const queued = new Map<string, Promise<MigrationState>>();
  function stepSoon(mid: string): Promise<MigrationState> {
    const waiting = queued.get(mid);
    if (waiting) return waiting;
    const p = serial(mid, () => {
      queued.delete(mid);
      return decideAndAppend(mid, advance);
    });
    queued.set(mid, p);
    return p;
  }

  return {
    active,
    meta,
    step,
    stepSoon,
    load,
    appendAll,
    /** After a restart: commands intended just before a crash may never have been sent; send them again (deduplicated). */
    async resendInFlight(mid: string): Promise<void> {
      const { state } = await load(mid);
      if (state.terminal) return;
      active.add(mid);
      await send(inFlight(state).map((r) => r.command));
    },
    /** Step timeouts: recorded as failures, which the core then rolls back or retries. */
    tick(mid: string): Promise<MigrationState> {
      return step(mid, () => ({ kind: 'Tick', meta: meta() }));
    },
  };
}

const intendedCommands = (events: MigrationEvent[]): StepCommand[] =>
  events.flatMap((e) => (e.type === 'StepIntended' ? [e.data] : []));

export type ProcessManager = ReturnType<typeof createProcessManager>;

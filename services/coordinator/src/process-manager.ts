import type { NatsConnection } from '@nats-io/transport-node';
import {
  ConcurrencyConflictError,
  buckets,
  encodeJson,
  openBucket,
  sendCommand,
  stepTimeoutsMs,
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

  /** Append decided events with compare-and-set; returns false when another writer got there first. */
  async function appendAll(events: MigrationEvent[], lastSeq: number): Promise<boolean> {
    let seq = lastSeq;
    for (const e of events) {
      try {
        seq = (await eventLog.append(e, { expectedLastSeq: seq, msgId: e.eventId })).seq;
      } catch (err) {
        if (err instanceof ConcurrencyConflictError) return false;
        throw err;
      }
    }
    return true;
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
      const locks = await openBucket(nc, buckets.ctLocks);
      const held = await locks.get(`ct-${status.ctid}`);
      if (held && held.string() === status.migrationId) await locks.delete(`ct-${status.ctid}`);
    } else active.add(status.migrationId);
  }

  /** Decide and append until the log and the decision agree; send what was intended. */
  function step(
    mid: string,
    input: (s: MigrationState) => DecideInput = () => ({ kind: 'Advance', meta: meta() }),
  ): Promise<MigrationState> {
    return serial(mid, async () => {
      for (let attempt = 0; attempt < 20; attempt++) {
        const { state, lastSeq } = await load(mid);
        if (!state.migrationId) return state;
        const { events, state: next } = decideUntilStable(input(state), state);
        if (events.length === 0) {
          await project(state, lastSeq);
          return state;
        }
        if (!(await appendAll(events, lastSeq))) continue;
        const cmds = events.flatMap((e) => (e.type === 'StepIntended' ? [e.data] : []));
        await send(cmds);
        for (const e of events)
          log.info(
            {
              migrationId: mid,
              type: e.type,
              ...(e.type === 'StepIntended' ? { step: e.data.step, node: e.data.node } : {}),
            },
            'decided',
          );
        await project(next, lastSeq + events.length);
        return next;
      }
      throw new Error(`${mid}: lost the compare-and-set 20 times in a row`);
    });
  }

  return {
    active,
    meta,
    step,
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

export type ProcessManager = ReturnType<typeof createProcessManager>;

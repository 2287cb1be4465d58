import { setTimeout as delay } from 'node:timers/promises';
import { formatEvent } from '@haul/cli';
import type { MigrateRequest, MigrationEvent } from '@haul/schemas';
import { awaitEvent, brokenInvariants, takeBaseline, type Baseline } from '@haul/test';
import type { Kill } from './soak-chaos.ts';
import type { EventTap, Seen } from './soak-events.ts';
import { createRng, type Rng } from './soak-rng.ts';
import type { SoakCt, SoakWorld } from './soak-world.ts';
import { withRequestDefaults, errorCodes } from '@haul/domain';

export type Outcome = 'completed' | 'rolledBack' | 'stuck';

export type MigrationRecord = {
  migrationId: string;
  requestId: string;
  ctid: string;
  source: string;
  target: string;
  mode: 'live' | 'restart';
  /** Live mode only. */
  preDump?: 'auto' | 'on' | 'off';
  sharedDisks: number;
  /** Milliseconds since the soak started. */
  acceptedAt: number;
  /** When the soak saw its terminal event (ms since the soak started). */
  endedAt?: number;
  /** From MigrationRequested to the terminal event, by the events' own timestamps. */
  durationS?: number;
  outcome?: Outcome;
  /** A stuck migration that ended after its deadline, before the soak did. */
  lateOutcome?: 'completed' | 'rolledBack';
  rollbackReason?: string;
  downtimeMs?: number;
  /** What the invariant checker found broken (empty: every invariant holds). */
  broken: string[];
  /** Services killed between the request and the end. */
  killsDuring: string[];
  /** The longest time between two consecutive events of the migration (a stall shows here). */
  longestQuietS?: number;
  /** The migration's log, for a violation or a stuck migration. */
  events?: string[];
  /**
   * The first read of its log after the end lacked the terminal event the soak's follower had already seen: the
   * server answered from behind its own stream (read again until it held it). Not a failure of haul's.
   */
  staleRead?: true;
};

export type DriverOptions = {
  world: SoakWorld;
  tap: EventTap;
  seed: number;
  parallel: number;
  deadlineMs: number;
  maxPerNode: number;
  kills: readonly Kill[];
  now(): number;
  say(s: string): void;
};

export type Driver = {
  records: MigrationRecord[];
  /** Requests the API refused, by error code (retried with a new request). */
  rejections: Record<string, number>;
  /** Requests that got no answer at first (asked again with the same request id). */
  unanswered: number;
  /** Things that are neither a migration outcome nor a violation, but someone should look at. */
  anomalies: string[];
  /** CTs between the request of a migration and the check after its end. */
  inFlight(): number;
  /** Start no new migration; `done` resolves once every started one ended or passed its deadline. */
  stop(): void;
  done: Promise<void>;
};

/** Node slots as the coordinator counts them (HAUL_MAX_PER_NODE) and the soak's own limit on migrations at once. */
function createCapacity(parallel: number, maxPerNode: number) {
  const perNode = new Map<string, number>();
  let running = 0;
  let wake: () => void = () => {};
  let changed = new Promise<void>((r) => (wake = r));
  const fits = (nodes: string[]) =>
    running < parallel && nodes.every((n) => (perNode.get(n) ?? 0) < maxPerNode);
  return {
    /** Wait for room for a migration between these nodes; undefined when `signal` aborts first. */
    async acquire(nodes: string[], signal: AbortSignal): Promise<(() => void) | undefined> {
      let onAbort = () => {};
      const aborted = new Promise<void>((r) => (onAbort = r));
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        while (!fits(nodes) && !signal.aborted) await Promise.race([changed, aborted]);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
      if (signal.aborted) return undefined;
      running++;
      for (const n of nodes) perNode.set(n, (perNode.get(n) ?? 0) + 1);
      return () => {
        running--;
        for (const n of nodes) perNode.set(n, perNode.get(n)! - 1);
        const woken = wake;
        changed = new Promise<void>((r) => (wake = r));
        woken();
      };
    },
  };
}

type Reply =
  | { kind: 'accepted'; migrationId: string }
  | { kind: 'rejected'; code: string; message: string; afterNoAnswer: boolean };
const retryable = new Set(['HAUL_RETRY', errorCodes.internal]);

/**
 * Migrations back and forth: one loop per CT (each with its own seeded choices of target, mode and pre-dump), at
 * most `parallel` at once and never more per node than the coordinator admits. After each migration ends, the
 * invariant checker runs on its CT; a CT with a broken invariant or a stuck migration is left alone from then on.
 */
export function startMigrations(o: DriverOptions): Driver {
  const { world, tap } = o;
  const stopping = new AbortController();
  const capacity = createCapacity(o.parallel, o.maxPerNode);
  const records: MigrationRecord[] = [];
  const rejections: Record<string, number> = {};
  const anomalies: string[] = [];
  let unanswered = 0;
  let inFlight = 0;

  /** Ask until answered, always with the same request id (idempotent: a lost reply is asked for again). */
  const ask = async (req: MigrateRequest): Promise<Reply | undefined> => {
    const until = o.now() + o.deadlineMs;
    let noAnswer = false;
    while (o.now() < until) {
      try {
        const r = await world.api.migrate(req);
        if (r.ok) return { kind: 'accepted', migrationId: r.migrationId };
        if (!retryable.has(r.error.code))
          return { kind: 'rejected', code: r.error.code, message: r.error.message, afterNoAnswer: noAnswer };
      } catch {
        if (!noAnswer) unanswered++;
        noAnswer = true;
      }
      await delay(1000);
    }
    return undefined;
  };

  /**
   * A refusal after an unanswered try: the lost try may have started a migration all the same (the API promises it
   * would then answer `duplicate`). The CT must not be touched while one runs: find it and take it over.
   */
  const runningMigrationOf = async (ctid: string): Promise<string | undefined> => {
    for (const until = o.now() + o.deadlineMs; o.now() < until;) {
      try {
        const r = await world.api.list(true);
        if (r.ok) return r.migrations?.find((m) => m.ctid === ctid)?.migrationId;
      } catch {
        /* no coordinator answering right now */
      }
      await delay(1000);
    }
    anomalies.push(`CT ${ctid}: no coordinator listed the migrations for ${o.deadlineMs / 1000}s`);
    return undefined;
  };

  const readEvents = async (migrationId: string): Promise<MigrationEvent[]> =>
    (await world.eventLog.read(migrationId)).events.map((e) => e.event);

  /**
   * The log of a migration that has ended, with the terminal event the follower saw (`end`). A read just after it may
   * come from a server behind its own stream (seen once with nats-server 2.9.10, R3, on a loaded machine: the read
   * lacked the terminal event the follower had): then its follow is awaited up to that event, and the log read again.
   */
  const readEnded = async (r: MigrationRecord, end: Seen): Promise<MigrationEvent[]> => {
    const events = await readEvents(r.migrationId);
    if (events.some((e) => e.eventId === end.eventId)) return events;
    r.staleRead = true;
    // Never there: the read below lacks it too, and the invariants say what that breaks.
    await awaitEvent(world.eventLog, r.migrationId, (e) => e.eventId === end.eventId, o.deadlineMs).catch(
      () => undefined,
    );
    return readEvents(r.migrationId);
  };

  const line = (r: MigrationRecord) => {
    const took = r.durationS !== undefined ? `in ${r.durationS}s` : '';
    const check =
      r.outcome === 'stuck'
        ? `STUCK: no terminal event ${o.deadlineMs / 1000}s after it was accepted (last: ${r.events?.at(-1)?.slice(13) ?? 'no event'})`
        : r.broken.length
          ? `VIOLATION: ${r.broken.join('; ')}`
          : 'ok';
    const kills = r.killsDuring.length ? ` kills: ${r.killsDuring.join(', ')}` : '';
    const how = r.preDump ? `${r.mode}/pre-dump ${r.preDump}` : r.mode;
    return `${r.migrationId} CT ${r.ctid} ${r.source}→${r.target} ${how}: ${r.outcome ?? '?'} ${took} ${check}${kills}`;
  };

  /** Check the CT after its migration ended; returns whether the CT may migrate again. */
  const finish = async (ct: SoakCt, r: MigrationRecord, end: Seen, base: Baseline): Promise<boolean> => {
    r.endedAt = o.now();
    r.outcome = end.type === 'MigrationCompleted' ? 'completed' : 'rolledBack';
    r.killsDuring = o.kills.filter((k) => k.at >= r.acceptedAt && k.at <= r.endedAt!).map((k) => k.name);
    const events = await readEnded(r, end);
    r.longestQuietS = longestQuietS(events);
    const terminal = events.find((e) => e.type === end.type);
    const requested = events.find((e) => e.type === 'MigrationRequested');
    if (terminal && requested)
      r.durationS = Math.round((Date.parse(terminal.time) - Date.parse(requested.time)) / 100) / 10;
    if (terminal?.type === 'MigrationCompleted' && terminal.data.stats.downtimeMs !== undefined)
      r.downtimeMs = terminal.data.stats.downtimeMs;
    if (terminal?.type === 'MigrationRolledBack') r.rollbackReason = terminal.data.reason;
    try {
      r.broken = await brokenInvariants(ct.place, r.migrationId, events, base);
    } catch (err) {
      r.broken = [`the invariant checker could not read the hosts: ${(err as Error).message}`];
    }
    if (r.broken.length) r.events = describeEvents(events);
    world.home.set(ct.ctid, r.outcome === 'completed' ? r.target : r.source);
    o.say(line(r));
    return r.broken.length === 0;
  };

  /** A migration past its deadline: stuck. Its CT is left alone; if it ends before the soak does, that is noted. */
  const stuck = async (r: MigrationRecord) => {
    r.outcome = 'stuck';
    const events = await readEvents(r.migrationId).catch(() => []);
    r.longestQuietS = longestQuietS(events, new Date());
    r.events = describeEvents(events);
    o.say(line(r));
    tap.onEnd(r.migrationId, (s) => {
      r.lateOutcome = s.type === 'MigrationCompleted' ? 'completed' : 'rolledBack';
      o.say(`${r.migrationId} (stuck) ended late: ${r.lateOutcome}`);
    });
  };

  /** Count a refusal; the migration a lost try started anyway, if there is one (an anomaly of the API). */
  const afterRefusal = async (
    ct: SoakCt,
    req: MigrateRequest,
    reply: Extract<Reply, { kind: 'rejected' }>,
  ): Promise<string | undefined> => {
    rejections[reply.code] = (rejections[reply.code] ?? 0) + 1;
    const running = reply.afterNoAnswer ? await runningMigrationOf(ct.ctid) : undefined;
    if (running)
      anomalies.push(
        `CT ${ct.ctid}: request ${req.requestId} got no answer, then ${reply.code}, yet migration ${running} of the CT runs`,
      );
    return running;
  };

  /** One migration of this CT: whether the CT may migrate again, and the API's refusal if there was one. */
  const migrateOnce = async (
    ct: SoakCt,
    req: MigrateRequest,
    preDump: MigrationRecord['preDump'],
  ): Promise<{ again: boolean; refused?: string }> => {
    const base = await takeBaseline(ct.place, req.source);
    const reply = await ask(req);
    if (!reply) {
      anomalies.push(`CT ${ct.ctid}: request ${req.requestId} never answered within the deadline`);
      return { again: false };
    }
    const migrationId = reply.kind === 'accepted' ? reply.migrationId : await afterRefusal(ct, req, reply);
    if (!migrationId) return { again: true, ...(reply.kind === 'rejected' ? { refused: reply.code } : {}) };
    const r: MigrationRecord = {
      migrationId,
      requestId: req.requestId,
      ctid: ct.ctid,
      source: req.source,
      target: req.target,
      mode: withRequestDefaults(req).mode,
      ...(preDump ? { preDump } : {}),
      sharedDisks: ct.place.shared.length,
      acceptedAt: o.now(),
      broken: [],
      killsDuring: [],
    };
    records.push(r);
    const end = await tap.terminal(r.migrationId, o.deadlineMs);
    if (end !== 'timeout') return { again: await finish(ct, r, end, base) };
    await stuck(r);
    return { again: false };
  };

  const ctLoop = async (ct: SoakCt) => {
    const rng: Rng = createRng(o.seed, `ct-${ct.ctid}`);
    let busySince: number | undefined;
    for (let n = 1; !stopping.signal.aborted; n++) {
      const source = world.home.get(ct.ctid)!;
      const target = rng.pick(world.nodes.filter((x) => x !== source));
      const mode = rng.chance(0.7) ? 'live' : 'restart';
      const preDump = rng.pick(['auto', 'on', 'off'] as const);
      const thinkMs = rng.between(0.5, 3) * 1000;
      await delay(thinkMs);
      const release = await capacity.acquire([source, target], stopping.signal);
      if (!release) break;
      let result: { again: boolean; refused?: string };
      inFlight++;
      try {
        result = await migrateOnce(
          ct,
          {
            requestId: `soak-s${o.seed}-ct${ct.ctid}-${n}`,
            ctid: ct.ctid,
            source,
            target,
            mode,
            sharedDisks: ct.place.shared,
            ...(mode === 'live' ? { preDump, maxIterations: 3 } : {}),
          },
          mode === 'live' ? preDump : undefined,
        );
      } catch (err) {
        anomalies.push(`CT ${ct.ctid}: ${(err as Error).message}`);
        o.say(`CT ${ct.ctid}: left alone after an error of the soak's own: ${(err as Error).message}`);
        result = { again: false };
      } finally {
        inFlight--;
        release();
      }
      // The CT's lock is released just after its terminal event: a short HAUL_CT_BUSY is expected, a long one not.
      if (result.refused === errorCodes.ctBusy) {
        busySince ??= o.now();
        if (o.now() - busySince > o.deadlineMs) {
          anomalies.push(
            `CT ${ct.ctid}: HAUL_CT_BUSY for ${o.deadlineMs / 1000}s with no migration of it running`,
          );
          result.again = false;
        }
      } else busySince = undefined;
      const again = result.again;
      if (!again) break;
    }
  };

  const loops = world.cts.map((ct) => ctLoop(ct));
  return {
    records,
    rejections,
    get unanswered() {
      return unanswered;
    },
    inFlight: () => inFlight,
    anomalies,
    stop: () => stopping.abort(),
    done: Promise.all(loops).then(() => {}),
  };
}

/** A migration's log as ops read it (`haul events`), without the progress lines. */
export const describeEvents = (events: readonly MigrationEvent[]): string[] =>
  events.filter((e) => e.type !== 'StreamProgress').map((e) => formatEvent(e));

/** The longest time between two consecutive events (and from the last one to `until`, if given), in seconds. */
export function longestQuietS(events: readonly MigrationEvent[], until?: Date): number {
  const times = events.map((e) => Date.parse(e.time));
  if (until && times.length) times.push(until.getTime());
  let longest = 0;
  for (let i = 1; i < times.length; i++) longest = Math.max(longest, times[i]! - times[i - 1]!);
  return Math.round(longest / 100) / 10;
}

/** How the migrations ended: outcome counts (a stuck one counts as stuck, whatever it did later). */
export function countOutcomes(records: readonly MigrationRecord[]): Record<Outcome, number> {
  const c: Record<Outcome, number> = { completed: 0, rolledBack: 0, stuck: 0 };
  for (const r of records) if (r.outcome) c[r.outcome]++;
  return c;
}

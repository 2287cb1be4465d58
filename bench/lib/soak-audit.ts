import { setTimeout as delay } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import { retryTransient, streams, topologyNames, type DeadLetter, type EventLog } from '@haul/bus';
import { errorCodes } from '@haul/domain';
import { readStream, type Seen } from './soak-events.ts';

export type StreamHealth = {
  replicas: number;
  leader: string | undefined;
  /** Peers (besides the leader) that are not current, with their lag. */
  behind: string[];
};

async function info(nc: NatsConnection, name: string): Promise<StreamInfo | undefined> {
  const jsm = await retryTransient(() => jetstreamManager(nc));
  try {
    return await retryTransient(() => jsm.streams.info(name));
  } catch (err) {
    if ((err as { name?: string }).name === 'StreamNotFoundError') return undefined;
    throw err;
  }
}

/** Configured replicas, leader and lagging peers of every stream and bucket (a missing one has 0 replicas). */
export async function streamHealth(nc: NatsConnection): Promise<Record<string, StreamHealth>> {
  const out: Record<string, StreamHealth> = {};
  for (const name of topologyNames()) {
    const i = await info(nc, name);
    out[name] = {
      replicas: i?.config.num_replicas ?? 0,
      leader: i?.cluster?.leader,
      behind: (i?.cluster?.replicas ?? [])
        .filter((p) => !p.current || p.offline)
        .map((p) => `${p.name}${p.offline ? ' offline' : ''} lag ${p.lag}`),
    };
  }
  return out;
}

const healthy = (h: Record<string, StreamHealth>) =>
  Object.values(h).every((s) => s.replicas > 0 && s.leader !== undefined && s.behind.length === 0);

/**
 * Wait (polling: no event says "every replica caught up") until every stream has a leader and all its peers are
 * current, or the time is up; returns the last health read.
 */
export async function waitHealthy(
  nc: NatsConnection,
  timeoutMs: number,
): Promise<{ ok: boolean; health: Record<string, StreamHealth> }> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let health: Record<string, StreamHealth> = {};
    try {
      health = await streamHealth(nc);
      if (healthy(health)) return { ok: true, health };
    } catch {
      /* an election in progress: read again */
    }
    if (Date.now() > until) return { ok: false, health };
    await delay(1000);
  }
}

/** The whole event stream as it is now, read from its first message to its last. */
export async function readWholeLog(
  nc: NatsConnection,
): Promise<{ messages: Map<number, Seen>; firstSeq: number; lastSeq: number; count: number }> {
  const i = await info(nc, streams.events);
  const state = i?.state;
  const messages = new Map<number, Seen>();
  if (!state || state.messages === 0) return { messages, firstSeq: 0, lastSeq: 0, count: 0 };
  for await (const s of readStream(nc, { fromSeq: state.first_seq, untilSeq: state.last_seq }))
    messages.set(s.seq, s);
  return { messages, firstSeq: state.first_seq, lastSeq: state.last_seq, count: state.messages };
}

/** Each migration's events read by subject at the end, through the same event log the services use. */
export async function readMigrations(log: EventLog, ids: Iterable<string>): Promise<Map<string, Seen[]>> {
  const out = new Map<string, Seen[]>();
  for (const id of ids) {
    const { events } = await log.read(id);
    out.set(
      id,
      events.map((e) => ({ seq: e.seq, migrationId: id, eventId: e.event.eventId, type: e.event.type })),
    );
  }
  return out;
}

/** Messages parked in the dead-letter stream (0 when it does not exist). */
export async function deadLetterCount(nc: NatsConnection): Promise<number> {
  return (await info(nc, streams.deadLetters))?.state.messages ?? 0;
}

export type ParkedLetters = {
  /**
   * Commands the server handed to a consumer whose filter they do not match (another node's command): the agent
   * or streamer refused and parked them, and never ran them. Seen with nats-server 2.9.10 after cluster leader changes; reported,
   * not counted as a failure of haul.
   */
  misdelivered: DeadLetter[];
  /** Every other parked message: a failure. */
  other: DeadLetter[];
};

/** Every parked message, sorted into server misdeliveries and the rest. */
export async function readDeadLetters(nc: NatsConnection): Promise<ParkedLetters> {
  const out: ParkedLetters = { misdelivered: [], other: [] };
  const i = await info(nc, streams.deadLetters);
  if (!i || i.state.messages === 0) return out;
  const jsm = await retryTransient(() => jetstreamManager(nc));
  for (let seq = i.state.first_seq; seq <= i.state.last_seq; seq++) {
    const m = await retryTransient(() => jsm.streams.getMessage(streams.deadLetters, { seq }));
    if (!m) continue;
    const letter = m.json<DeadLetter>();
    const addressedTo = /^haul\.cmd\.([^.]+)\./.exec(letter.subject)?.[1];
    const misdelivered =
      letter.reason.startsWith(errorCodes.wrongExecutor) &&
      addressedTo !== undefined &&
      addressedTo !== letter.node;
    (misdelivered ? out.misdelivered : out.other).push(letter);
  }
  return out;
}

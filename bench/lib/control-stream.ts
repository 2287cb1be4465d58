import type { NatsConnection } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import { limits, streamConfigs, streams, subjects } from '@haul/bus';

/** The last sequence of the event stream (0 when empty). */
export async function lastSeqOf(nc: NatsConnection, stream: string = streams.events): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(stream)).state.last_seq;
}

/**
 * Read the whole event stream once through one ordered consumer (as `EventLog.follow` does), handing every
 * message to `onMsg`; resolves with the seconds it took and the messages and bytes read. `lastPerSubject`: only
 * each subject's last message (as EventLog.replaySeals reads), to the end as the server counts it.
 */
export async function readStream(
  nc: NatsConnection,
  onMsg: (m: JsMsg) => void = () => {},
  lastPerSubject = false,
): Promise<{ seconds: number; messages: number; bytes: number }> {
  const last = await lastSeqOf(nc);
  const t0 = performance.now();
  let messages = 0;
  let bytes = 0;
  if (last > 0) {
    const consumer = await jetstream(nc).consumers.get(streams.events, {
      filter_subjects: subjects.eventsAll,
      deliver_policy: lastPerSubject ? DeliverPolicy.LastPerSubject : DeliverPolicy.All,
    });
    let pending = lastPerSubject ? (await consumer.info(true)).num_pending : Infinity;
    // Pulled as the replay pulls (limits.replayPullMessages): both reads wait on the server alike.
    const iter = await consumer.consume({ max_messages: limits.replayPullMessages });
    for await (const m of iter) {
      messages++;
      bytes += m.data.length;
      onMsg(m);
      if (m.seq >= last || --pending <= 0) break;
    }
    await iter.close();
  }
  return { seconds: (performance.now() - t0) / 1000, messages, bytes };
}

const rawStream = 'HAUL_BENCH_RAW';

/**
 * The raw rate of JetStream compare-and-set appends on this server: `writers` subjects written at once (as many
 * as the coordinator handles events at once), each append expecting the subject's last sequence and carrying a
 * msg id, into a stream configured like the event stream. The payload is a real event of the run.
 */
export async function rawCasAppendsPerSec(
  nc: NatsConnection,
  payload: Uint8Array,
  writers: number = limits.coordinatorConcurrentEvents,
  perWriter = 200,
): Promise<{ appendsPerSec: number; appends: number; seconds: number }> {
  return withRawStream(nc, async (js) => {
    const writer = async (w: number) => {
      let seq = 0;
      for (let i = 0; i < perWriter; i++)
        seq = (
          await js.publish(`haul-bench-raw.w${w}`, payload, {
            msgID: `w${w}:${i}`,
            expect: { lastSubjectSequence: seq },
            timeout: limits.publishTimeoutMs,
          })
        ).seq;
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
    const seconds = (performance.now() - t0) / 1000;
    const appends = writers * perWriter;
    return { appendsPerSec: appends / seconds, appends, seconds };
  });
}

/**
 * The round trip of one compare-and-set append at a time: `appends` appends to one subject, each expecting the
 * last one's sequence and carrying a msg id, each timed from its publish to its ack (after one uncounted append).
 * What every step of a migration pays at least twice: its intent's append and its outcome's.
 */
export function casAppendRoundTripsMs(
  nc: NatsConnection,
  payload: Uint8Array,
  appends: number,
): Promise<number[]> {
  return withRawStream(nc, async (js) => {
    const ms: number[] = [];
    let seq = 0;
    for (let i = 0; i <= appends; i++) {
      const t0 = performance.now();
      seq = (
        await js.publish('haul-bench-raw.rtt', payload, {
          msgID: `rtt:${i}`,
          expect: { lastSubjectSequence: seq },
          timeout: limits.publishTimeoutMs,
        })
      ).seq;
      if (i > 0) ms.push(performance.now() - t0);
    }
    return ms;
  });
}

/** `run` against a scratch stream configured like the event stream (subjects haul-bench-raw.>), deleted after. */
async function withRawStream<T>(nc: NatsConnection, run: (js: JetStreamClient) => Promise<T>): Promise<T> {
  const jsm = await jetstreamManager(nc);
  const events = streamConfigs({ replicas: 1 }).find((c) => c.name === streams.events)!;
  await jsm.streams.add({ ...events, name: rawStream, subjects: ['haul-bench-raw.>'] });
  try {
    return await run(jetstream(nc));
  } finally {
    await jsm.streams.delete(rawStream);
  }
}

/**
 * Wait until the coordinator has sealed `want` migrations whose logs start after `afterSeq` (it seals each right
 * after its terminal event comes back to it), or `timeoutMs` has passed: a seal it cannot write (a message after the
 * terminal event) never comes. Resolves with the seals counted.
 */
export async function awaitSeals(
  nc: NatsConnection,
  afterSeq: number,
  want: number,
  timeoutMs: number,
): Promise<number> {
  const consumer = await jetstream(nc).consumers.get(streams.events, {
    filter_subjects: subjects.eventsAll,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: afterSeq + 1,
  });
  const iter = await consumer.consume();
  const timer = setTimeout(() => void iter.close(), timeoutMs);
  let seals = 0;
  try {
    for await (const m of iter) {
      if ((m.json<{ type?: string }>().type ?? '') === 'MigrationSealed' && ++seals >= want) break;
    }
  } finally {
    clearTimeout(timer);
    await iter.close();
  }
  return seals;
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { MigrationEvent } from '@haul/schemas';
import { subjects } from './conventions.ts';
import { replayLog } from './replay.ts';
import type { EventJudge, HeldMessage, SealMessage } from './trust/event-judge.ts';
import type { TrustVerdict } from './trust/trust.ts';

const enc = new TextEncoder();
const mid = 'm-replay-order';
const subject = subjects.events(mid);

/** A stream of one migration's messages: plain events, and seals (their type third, as the coordinator writes). */
function message(seq: number, sealed: boolean, pending: number) {
  const body = sealed
    ? { eventId: `${mid}:sealed:${seq}`, migrationId: mid, type: 'MigrationSealed', data: {} }
    : { eventId: `${mid}:${seq}`, migrationId: mid, type: 'StepSucceeded', data: {} };
  return { subject, seq, data: enc.encode(JSON.stringify(body)), headers: undefined, info: { pending } };
}

/** A JetStream client whose one consumer delivers `msgs`, then ends. */
function streamOf(msgs: ReturnType<typeof message>[]): JetStreamClient {
  const consumer = {
    info: () => Promise.resolve({ num_pending: msgs.length }),
    consume: () =>
      Promise.resolve({
        close: () => Promise.resolve(),
        [Symbol.asyncIterator]: () =>
          (async function* () {
            for (const m of msgs) yield await Promise.resolve(m);
          })(),
      }),
  };
  return { consumers: { get: () => Promise.resolve(consumer) } } as unknown as JetStreamClient;
}

/**
 * A judge whose seal checks end when the test says (`release(seq)`), and which records the order it judged the
 * sealed logs in (the seal's sequence and how many messages came with it).
 */
function controlledJudge() {
  const judged: [number, number][] = [];
  const checks = new Map<number, () => void>();
  const judge = {
    eventOf: (m: HeldMessage) => JSON.parse(new TextDecoder().decode(m.raw.data)) as MigrationEvent,
    checkSeal: (seal: SealMessage) =>
      new Promise<TrustVerdict>((resolve) => checks.set(seal.raw.seq, () => resolve({ ok: true }))),
    sealed: (messages: readonly HeldMessage[], seal: SealMessage) => {
      judged.push([seal.raw.seq, messages.length]);
      return [{ seq: seal.raw.seq, event: seal.event }];
    },
  } as unknown as EventJudge;
  const release = (seq: number) => checks.get(seq)!();
  return { judge, judged, checks, release };
}

describe('replayLog: seals checked at once, logs judged in order', () => {
  it('given two seals of one migration whose checks end in reverse order, then the first log is judged and handed on first', async () => {
    // Given a log: two events, a seal, one more event, a second seal
    const msgs = [
      message(1, false, 4),
      message(2, false, 3),
      message(3, true, 2),
      message(4, false, 1),
      message(5, true, 0),
    ];
    const { judge, judged, checks, release } = controlledJudge();
    const batches: number[][] = [];
    const replay = (async () => {
      for await (const b of replayLog(streamOf(msgs), judge, () => Promise.resolve(), {}))
        batches.push(b.map((e) => e.seq));
    })();
    // When both seals are being checked and the second check ends first
    while (checks.size < 2) await new Promise((r) => setImmediate(r));
    release(5);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(judged, [], 'the second log waits for the first');
    release(3);
    await replay;

    // Then the logs were judged, and handed on, in the log's order
    assert.deepEqual(judged, [
      [3, 2],
      [5, 1],
    ]);
    assert.deepEqual(batches, [[3], [5]]);
  });

  it('given a replay that stops while seals are being checked, then no log is judged after it', async () => {
    const msgs = [message(1, false, 3), message(2, true, 2), message(3, false, 1), message(4, true, 0)];
    const { judge, judged, checks, release } = controlledJudge();
    const ac = new AbortController();
    const replay = (async () => {
      for await (const _ of replayLog(streamOf(msgs), judge, () => Promise.resolve(), { signal: ac.signal }))
        assert.fail('nothing is handed on');
    })();
    while (checks.size < 2) await new Promise((r) => setImmediate(r));
    ac.abort();
    release(2);
    release(4);
    await replay;
    assert.deepEqual(judged, []);
  });
});

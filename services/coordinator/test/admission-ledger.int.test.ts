import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { admissionLedgerKey, buckets, connectBus, decodeJson, openBucket } from '@haul/bus';
import type { NatsServer } from '@haul/test';
import { createLedger, type AdmissionEntry, type Ledger } from '../src/admission-ledger.ts';
import { startBus } from './support.ts';

/**
 * The ledger as one coordinator process keeps it (admission-ledger.ts): it writes from what it last knew, checks an
 * answer that writes nothing against the stored revision, and puts the changes that come during a write into the
 * next one. Two connections stand for two coordinators.
 */

const log = pino({ level: 'silent' });
let server: NatsServer;
let nc: NatsConnection;
let other: NatsConnection;

before(async () => {
  ({ server, nc } = await startBus('ledger-test'));
  other = await connectBus({ servers: server.url, name: 'ledger-test-other' });
});
after(async () => {
  await other?.drain();
  await nc?.drain();
  await server?.stop();
});

let n = 0;
const entry = (): AdmissionEntry => {
  const i = ++n;
  return {
    migrationId: `m-ledger-${i}`,
    requestId: `r-${i}`,
    ctid: String(1000 + i),
    source: 'node-a',
    target: 'node-b',
    imageRoots: { source: '/var/haul/a', target: '/var/haul/b' },
    admittedAt: new Date().toISOString(),
  };
};
const add = (ledger: Ledger, e: AdmissionEntry) =>
  ledger.change((entries) => ({ entries: [...entries, e], result: entries.length }));
const has = (ledger: Ledger, e: AdmissionEntry) =>
  ledger.change((entries) => ({ result: entries.some((x) => x.migrationId === e.migrationId) }));

async function stored(): Promise<{ ids: string[]; revision: number }> {
  const e = await (await openBucket(nc, buckets.admission)).get(admissionLedgerKey);
  assert.ok(e?.operation === 'PUT', 'the ledger is stored');
  const { entries } = decodeJson(e.value) as { entries: AdmissionEntry[] };
  return { ids: entries.map((x) => x.migrationId), revision: e.revision };
}

describe('the admission ledger of one process', () => {
  it('puts the changes that come during a write into the next write, each decided after the ones before it', async () => {
    const ledger = createLedger(nc, log);
    await add(ledger, entry());
    const before = await stored();
    const added = Array.from({ length: 20 }, entry);
    const answers = await Promise.all(added.map((e) => add(ledger, e)));
    const after = await stored();
    // The first change is written alone; the 19 that came while it was in flight go together.
    assert.equal(after.revision - before.revision, 2);
    assert.deepEqual(after.ids, [...before.ids, ...added.map((e) => e.migrationId)]);
    assert.deepEqual(
      answers,
      added.map((_, i) => before.ids.length + i),
    );
  });

  it('loses no change of another coordinator: a write over a revision it did not know is decided again', async () => {
    const mine = createLedger(nc, log);
    const theirs = createLedger(other, log);
    const [a, b, c] = [entry(), entry(), entry()];
    await add(mine, a);
    await add(theirs, b);
    // Decided first on the ledger this connection wrote (without b), refused by the compare-and-set, decided again
    const seen: number[] = [];
    await mine.change((entries) => {
      seen.push(entries.length);
      return { entries: [...entries, c], result: undefined };
    });
    assert.equal(seen.length, 2);
    assert.equal(seen[1]! - seen[0]!, 1);
    const { ids } = await stored();
    assert.deepEqual(ids.slice(-3), [a.migrationId, b.migrationId, c.migrationId]);
  });

  it('answers a change that writes nothing on the ledger as stored, not as it last knew it', async () => {
    const mine = createLedger(nc, log);
    const theirs = createLedger(other, log);
    const e = entry();
    await add(mine, entry());
    assert.equal(await has(mine, e), false);
    await add(theirs, e);
    assert.equal(await has(mine, e), true);
    assert.ok((await mine.read()).some((x) => x.migrationId === e.migrationId));
    // Deleted by hand: a missing ledger reads as empty (nothing rebuilds it without the log).
    await (await openBucket(other, buckets.admission)).delete(admissionLedgerKey);
    assert.deepEqual(await mine.read(), []);
    assert.equal(await has(mine, e), false);
  });

  it('answers a change that throws with its error alone; the others of its write are stored', async () => {
    const ledger = createLedger(nc, log);
    await add(ledger, entry());
    const [a, b] = [entry(), entry()];
    const results = await Promise.allSettled([
      add(ledger, entry()),
      add(ledger, a),
      ledger.change(() => {
        throw new Error('no decision');
      }),
      add(ledger, b),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
    );
    assert.ok(results[2].status === 'rejected' && String(results[2].reason).includes('no decision'));
    const { ids } = await stored();
    assert.deepEqual(ids.slice(-2), [a.migrationId, b.migrationId]);
  });

  it('never writes over a missing ledger from an empty list: the next change with a rebuild rebuilds it', async () => {
    const ledger = createLedger(nc, log);
    await add(ledger, entry());
    await (await openBucket(other, buckets.admission)).delete(admissionLedgerKey);
    // A change without a rebuild (a release) reads the missing ledger as empty and writes nothing
    assert.equal(await has(ledger, entry()), false);
    const fromLog = entry();
    const e = entry();
    await ledger.change((entries) => ({ entries: [...entries, e], result: undefined }), {
      rebuild: () => Promise.resolve([fromLog]),
    });
    assert.deepEqual((await stored()).ids, [fromLog.migrationId, e.migrationId]);
  });

  it('answers on the stored ledger after its stream was purged', async () => {
    const ledger = createLedger(nc, log);
    const e = entry();
    await add(ledger, e);
    assert.equal(await has(ledger, e), true);
    await (await jetstreamManager(other)).streams.purge(`KV_${buckets.admission}`);
    assert.equal(await has(ledger, e), false);
    assert.deepEqual(await ledger.read(), []);
  });

  it('writes junk over by a rebuild, as before: a change with a rebuild stores what the log says', async () => {
    const ledger = createLedger(nc, log);
    const kv = await openBucket(other, buckets.admission);
    await kv.put(admissionLedgerKey, new TextEncoder().encode('junk'));
    const fromLog = entry();
    const e = entry();
    const answer = await ledger.change((entries) => ({ entries: [...entries, e], result: entries.length }), {
      rebuild: () => Promise.resolve([fromLog]),
    });
    assert.equal(answer, 1);
    assert.deepEqual((await stored()).ids, [fromLog.migrationId, e.migrationId]);
  });
});

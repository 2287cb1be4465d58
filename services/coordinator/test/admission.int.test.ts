import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import {
  admissionLedgerKey,
  buckets,
  createEventLog,
  decodeJson,
  encodeJson,
  limits,
  openBucket,
  type EventLog,
} from '@haul/bus';
import { createApiClient } from '@haul/cli';
import { decide, initialState } from '@haul/domain';
import { createValidators, type MigrateReply, type MigrateRequest } from '@haul/schemas';
import { awaitEvent, tempIdentities, type NatsServer } from '@haul/test';
import type { AdmissionEntry } from '../src/admission-ledger.ts';
import { migrationIdFor } from '../src/admission.ts';
import { createProcessManager } from '../src/process-manager.ts';
import { jsonLines, putHeartbeats, startBus, startCoordinator as startOne } from './support.ts';

const validators = createValidators();
const ids = tempIdentities();
const trust = ids.trust('coordinator');
let server: NatsServer;
let nc: NatsConnection;
let eventLog: EventLog;
let api: ReturnType<typeof createApiClient>;
/** Every line the coordinators logged, parsed (pino's sink() habit). */
const logged: Record<string, unknown>[] = [];

/**
 * A coordinator in this process on its own connection (so a restart is a new connection, as after a crash), with the
 * event log `over` makes of that connection when it says one.
 */
const startCoordinator = (over: Pick<Parameters<typeof startOne>[0], 'eventLog'> = {}) =>
  startOne({
    ...over,
    server,
    name: 'admission-test-coordinator',
    // No agents run here: migrations stay at their preflight (its steps time out only after 30 s), and no resync
    // reads the log behind the test's back.
    settings: { maxMigrationsPerNode: 2, resyncMs: 3_600_000 },
    log: pino(
      { level: 'info' },
      jsonLines((l) => logged.push(l)),
    ),
    trust,
    validators,
  });
let coordinator: Awaited<ReturnType<typeof startCoordinator>>;

before(async () => {
  ({ server, nc } = await startBus('admission-test'));
  eventLog = createEventLog(nc, validators, trust);
  const scheduler = ids.trust('scheduler');
  api = createApiClient(nc, (s, b) => scheduler.sign(s, b));
  coordinator = await startCoordinator();
});
after(async () => {
  clearInterval(beating);
  await coordinator?.stop();
  await nc?.drain();
  await server?.stop();
});

/** The nodes this file has made alive: they beat on every heartbeat period, as their agents would. */
const alive = new Set<string>();
let beating: NodeJS.Timeout | undefined;

/**
 * These nodes are alive from now on: a fresh heartbeat now and every period after (each test uses its own nodes,
 * so the tests do not share capacity). A slow step of a test on a busy machine does not make them stale.
 */
async function beat(...nodes: string[]): Promise<void> {
  for (const node of nodes) alive.add(node);
  beating ??= setInterval(() => void heartbeats([...alive]).catch(() => {}), limits.heartbeatMs);
  await heartbeats(nodes);
}

const heartbeats = (nodes: string[]): Promise<void> => putHeartbeats(nc, nodes);

const request = (requestId: string, ctid: string, source: string, target: string): MigrateRequest => ({
  requestId,
  ctid,
  source,
  target,
});
const codeOf = (r: MigrateReply) => (r.ok ? 'accepted' : r.error.code);
const inLog = async (migrationId: string) => (await eventLog.read(migrationId)).events.map((e) => e.event);

async function readLedger(): Promise<{ entries: AdmissionEntry[]; revision: number }> {
  const e = await (await openBucket(nc, buckets.admission)).get(admissionLedgerKey);
  assert.ok(e?.operation === 'PUT', 'the admission ledger exists');
  return { ...(decodeJson(e.value) as { entries: AdmissionEntry[] }), revision: e.revision };
}

/** Resolve when the coordinator has projected this migration's status (a KV watch, no polling). */
async function statusProjected(migrationId: string): Promise<void> {
  const kv = await openBucket(nc, buckets.status);
  const watch = await kv.watch({ key: migrationId });
  try {
    for await (const e of watch) if (e.operation === 'PUT') return;
  } finally {
    watch.stop();
  }
}

describe('admission under concurrency', () => {
  it('of 4 simultaneous requests for 4 CTs on two idle nodes with a limit of 2, exactly 2 are accepted', async () => {
    await beat('n1a', 'n1b');
    const replies = await Promise.all(
      ['201', '202', '203', '204'].map((ct) => api.migrate(request(`four-${ct}`, ct, 'n1a', 'n1b'))),
    );
    assert.deepEqual(replies.map(codeOf).sort(), [
      'HAUL_NODE_BUSY',
      'HAUL_NODE_BUSY',
      'accepted',
      'accepted',
    ]);
  });

  it('5 identical simultaneous requests all answer the one migration, which exists when they answer', async () => {
    await beat('n2a', 'n2b');
    const req = request('five-same', '301', 'n2a', 'n2b');
    const answers = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const reply = await api.migrate(req);
        // Read the log as soon as this reply arrives: a reply may only name a migration that exists.
        return { reply, logged: reply.ok ? (await inLog(reply.migrationId)).length : 0 };
      }),
    );
    const ids = new Set(answers.map((a) => (a.reply.ok ? a.reply.migrationId : codeOf(a.reply))));
    assert.equal(ids.size, 1, JSON.stringify(answers));
    const [mid] = [...ids] as [string];
    assert.equal(answers.filter((a) => a.reply.ok && !a.reply.duplicate).length, 1, 'one duplicate: false');
    assert.ok(
      answers.every((a) => a.logged > 0),
      `each answer came after the append: ${JSON.stringify(answers)}`,
    );
    const events = await inLog(mid);
    assert.deepEqual(
      events.map((e) => e.type),
      ['MigrationRequested', ...events.slice(1).map((e) => e.type)],
    );
    await statusProjected(mid);
    const list = await api.list();
    assert.ok(list.ok && list.migrations?.some((m) => m.migrationId === mid));
  });

  it('5 identical simultaneous requests for a busy CT are all refused; none names a migration', async () => {
    await beat('n2a', 'n2b');
    const req = request('five-busy', '301', 'n2b', 'n2a');
    const replies = await Promise.all(Array.from({ length: 5 }, () => api.migrate(req)));
    assert.deepEqual(replies.map(codeOf), Array(5).fill('HAUL_CT_BUSY'));
    assert.deepEqual(await inLog(migrationIdFor('five-busy')), []);
  });

  it('request ids a sanitiser would merge (a.b:1, a_b_1) get two migrations, each with its own request', async () => {
    await beat('n3a', 'n3b');
    const a = await api.migrate(request('a.b:1', '401', 'n3a', 'n3b'));
    const b = await api.migrate(request('a_b_1', '402', 'n3a', 'n3b'));
    assert.ok(a.ok && b.ok && !a.duplicate && !b.duplicate, JSON.stringify([a, b]));
    assert.notEqual(a.migrationId, b.migrationId);
    for (const [reply, requestId] of [
      [a, 'a.b:1'],
      [b, 'a_b_1'],
    ] as const) {
      const [first] = await inLog(reply.migrationId);
      assert.ok(first?.type === 'MigrationRequested' && first.data.request.requestId === requestId);
    }
  });

  it('a busy CT is reported as such even when its node is also at its limit', async () => {
    await beat('n4a', 'n4b');
    assert.equal(codeOf(await api.migrate(request('prec-1', '501', 'n4a', 'n4b'))), 'accepted');
    assert.equal(codeOf(await api.migrate(request('prec-2', '502', 'n4b', 'n4a'))), 'accepted');
    const busy = await api.migrate(request('prec-3', '501', 'n4a', 'n4b'));
    assert.ok(
      !busy.ok && busy.error.code === 'HAUL_CT_BUSY' && busy.error.field === 'ctid',
      JSON.stringify(busy),
    );
    const node = await api.migrate(request('prec-4', '503', 'n4a', 'n4b'));
    assert.ok(!node.ok && node.error.code === 'HAUL_NODE_BUSY' && node.error.field === 'source');
  });
});

/**
 * A migration accepted from the file's coordinator, which is then stopped once it is done with it (its preflight
 * decided, so a coordinator started next reads nothing of it unasked).
 */
async function acceptedThenStopped(requestId: string, ctid: string, source: string, target: string) {
  await beat(source, target);
  const first = await api.migrate(request(requestId, ctid, source, target));
  assert.ok(first.ok && !first.duplicate, JSON.stringify(first));
  await awaitEvent(
    eventLog,
    first.migrationId,
    (e) => e.type === 'StepIntended' && e.data.step === 'lockSource',
    20_000,
  );
  await coordinator.stop();
  return first;
}

describe('admission after crashes and junk', () => {
  it('reaps an admission whose MigrationRequested never came, keeps a fresh one, and lets its retry complete it', async () => {
    // Given a coordinator that died between admission and append, long ago (CT 701) and just now (CT 702)
    await coordinator.stop();
    await beat('n6a', 'n6b');
    const crashed = (requestId: string, ctid: string, ageMs: number): AdmissionEntry => ({
      migrationId: migrationIdFor(requestId),
      requestId,
      ctid,
      source: 'n6a',
      target: 'n6b',
      imageRoots: { source: '/img/n6a', target: '/img/n6b' },
      admittedAt: new Date(Date.now() - ageMs).toISOString(),
    });
    const old = crashed('crashed-long-ago', '701', 3_600_000);
    const fresh = crashed('crashed-just-now', '702', 0);
    const { entries, revision } = await readLedger();
    const kv = await openBucket(nc, buckets.admission);
    await kv.update(admissionLedgerKey, encodeJson({ entries: [...entries, old, fresh] }), revision);

    // When a coordinator starts
    coordinator = await startCoordinator();

    // Then the old admission is gone (and said so), the fresh one stays
    const ids = (await readLedger()).entries.map((e) => e.migrationId);
    assert.ok(!ids.includes(old.migrationId) && ids.includes(fresh.migrationId), JSON.stringify(ids));
    assert.ok(logged.some((l) => l['msg'] === 'admission released' && l['migrationId'] === old.migrationId));
    // CT 701 is free again; CT 702 is held until its own request comes again, which then completes it
    assert.equal(codeOf(await api.migrate(request('after-reap', '701', 'n6a', 'n6b'))), 'accepted');
    assert.equal(codeOf(await api.migrate(request('steal-702', '702', 'n6a', 'n6b'))), 'HAUL_CT_BUSY');
    const retried = await api.migrate(request('crashed-just-now', '702', 'n6a', 'n6b'));
    assert.deepEqual(retried, { ok: true, migrationId: fresh.migrationId, duplicate: false });
    assert.equal((await inLog(fresh.migrationId))[0]?.type, 'MigrationRequested');
  });

  it('a request sent again whose migration two reads do not show yet (a stream leader behind) is answered as the duplicate it is', async () => {
    // Given a migration accepted, and a coordinator (started after it) whose next two reads of it end before its
    // first event, once armed
    const first = await acceptedThenStopped('read-behind', '1201', 'n12a', 'n12b');
    let behind = 0;
    coordinator = await startOne({
      server,
      name: 'admission-test-behind',
      settings: { maxMigrationsPerNode: 2, resyncMs: 3_600_000 },
      log: pino({ level: 'silent' }),
      trust,
      validators,
      eventLog: (own) => {
        const real = createEventLog(own, validators, trust);
        return {
          ...real,
          read: async (m, o) =>
            m === first.migrationId && behind > 0 ? (behind--, { events: [], lastSeq: 0 }) : real.read(m, o),
        };
      },
    });
    behind = 2;

    // When the request comes again: the duplicate check reads nothing, admission holds the CT for this very
    // migration, the append meets the log's copy, and the read after it is behind too
    const again = await api.migrate(request('read-behind', '1201', 'n12a', 'n12b'));

    // Then it is answered with the migration in the log (before: "refused by the log, not in it"), read again
    try {
      assert.deepEqual(again, { ok: true, migrationId: first.migrationId, duplicate: true });
      assert.equal(behind, 0, 'both reads behind were made');
    } finally {
      // The file's own coordinator again, for the tests after this one (they read what it logs)
      await coordinator.stop();
      coordinator = await startCoordinator();
    }
  });

  it('keeps the admission of a migration older than the grace period whose log a stream leader behind shows empty', async () => {
    // Given a migration accepted, admitted long ago (its entry's time moved back an hour), and a coordinator that
    // starts while the stream's leader answers its next two reads of that log with nothing (nats-server before 2.11)
    const first = await acceptedThenStopped('reap-behind', '1401', 'n14a', 'n14b');
    const { entries, revision } = await readLedger();
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const kv = await openBucket(nc, buckets.admission);
    await kv.update(
      admissionLedgerKey,
      encodeJson({
        entries: entries.map((e) =>
          e.migrationId === first.migrationId ? { ...e, admittedAt: hourAgo } : e,
        ),
      }),
      revision,
    );
    let behind = 2;
    const seen = logged.length;
    coordinator = await startCoordinator({
      eventLog: (own) => {
        const real = createEventLog(own, validators, trust);
        return {
          ...real,
          readCoordinatorEvents: async (m, afterSeq, types) =>
            m === first.migrationId && behind > 0
              ? (behind--, { events: [], lastSeq: 0 })
              : real.readCoordinatorEvents(m, afterSeq, types),
        };
      },
    });
    try {
      // When it reaps at its start: then the admission stays (before, the CT and its nodes were freed for another
      // migration while this one held the CT), and a request for the CT is refused as busy
      assert.equal(behind, 0, 'both reads behind were made');
      assert.ok(
        (await readLedger()).entries.some((e) => e.migrationId === first.migrationId),
        'the admission is kept',
      );
      assert.ok(
        !logged
          .slice(seen)
          .some((l) => l['msg'] === 'admission released' && l['migrationId'] === first.migrationId),
      );
      assert.equal(codeOf(await api.migrate(request('steal-1401', '1401', 'n14a', 'n14b'))), 'HAUL_CT_BUSY');
    } finally {
      await coordinator.stop();
      coordinator = await startCoordinator();
    }
  });

  it("reads the admitted migrations' logs side by side when it reaps: one whose read waits does not hold the others", async () => {
    // Given a ledger of several admissions, and a coordinator whose reads of their logs are counted while under way
    await coordinator.stop();
    assert.ok((await readLedger()).entries.length >= 2, 'several admissions');
    let underWay = 0;
    let most = 0;
    coordinator = await startCoordinator({
      eventLog: (own) => {
        const real = createEventLog(own, validators, trust);
        return {
          ...real,
          readCoordinatorEvents: async (m, afterSeq, types) => {
            most = Math.max(most, ++underWay);
            try {
              return await real.readCoordinatorEvents(m, afterSeq, types);
            } finally {
              underWay--;
            }
          },
        };
      },
    });

    // When it reaps at its start
    // Then more than one read was under way at once (before, one after the other: an empty log past its grace
    // period, read again for 3.75 s, held every admission after it)
    try {
      assert.ok(most > 1, `at most ${most} read at once`);
    } finally {
      await coordinator.stop();
      coordinator = await startCoordinator();
    }
  });

  it('junk in the status bucket breaks neither list nor a coordinator restart', async () => {
    await beat('n7a', 'n7b');
    const before = await api.migrate(request('before-junk', '801', 'n7a', 'n7b'));
    assert.ok(before.ok, JSON.stringify(before));
    await statusProjected(before.migrationId);
    const kv = await openBucket(nc, buckets.status);
    await kv.put('junk-text', new TextEncoder().encode('not json'));
    await kv.put('junk-shape', encodeJson({ migrationId: 7, phase: 'nowhere' }));
    const list = await api.list();
    assert.ok(
      list.ok && list.migrations?.some((m) => m.migrationId === before.migrationId),
      JSON.stringify(list),
    );
    await coordinator.stop();
    coordinator = await startCoordinator();
    assert.ok(logged.some((l) => l['msg'] === 'unreadable status skipped' && l['key'] === 'junk-text'));
    assert.equal(codeOf(await api.migrate(request('after-junk', '802', 'n7a', 'n7b'))), 'accepted');
  });

  it('a junk or deleted admission ledger is rebuilt from the log: busy CTs stay busy', async () => {
    const kv = await openBucket(nc, buckets.admission);
    const before = (await readLedger()).entries.map((e) => e.migrationId).sort();
    await kv.put(admissionLedgerKey, new TextEncoder().encode('junk'));
    await beat('n2a', 'n2b', 'n8a');
    const busy = await api.migrate(request('rebuilt-1', '301', 'n2b', 'n8a'));
    assert.equal(codeOf(busy), 'HAUL_CT_BUSY');
    assert.deepEqual((await readLedger()).entries.map((e) => e.migrationId).sort(), before);
    await kv.delete(admissionLedgerKey);
    assert.equal(codeOf(await api.migrate(request('rebuilt-2', '301', 'n2b', 'n8a'))), 'HAUL_CT_BUSY');
    assert.deepEqual((await readLedger()).entries.map((e) => e.migrationId).sort(), before);
  });

  it('an unreadable heartbeat makes its node unknown, not the request fail', async () => {
    await beat('n9a');
    await (await openBucket(nc, buckets.nodes)).put('n9b', new TextEncoder().encode('{"node":'));
    const r = await api.migrate(request('bad-beat', '901', 'n9a', 'n9b'));
    assert.ok(!r.ok && r.error.code === 'HAUL_NODE_UNKNOWN' && r.error.field === 'target', JSON.stringify(r));
  });
});

describe('a MigrationRequested that lands after its admission was reaped', () => {
  /**
   * What a coordinator whose append took longer than the grace period leaves: its admission reaped meanwhile (the
   * log was still empty), then its MigrationRequested in the log after all.
   */
  async function landsLate(req: MigrateRequest): Promise<string> {
    const migrationId = migrationIdFor(req.requestId);
    const meta = createProcessManager(
      nc,
      validators,
      eventLog,
      { node: 'late', frozenLeaseMs: 60_000, maxAttempts: 3 },
      pino({ level: 'silent' }),
      trust,
    ).meta();
    const imageRoots = { source: `/img/${req.source}`, target: `/img/${req.target}` };
    const [requested] = decide(
      { kind: 'RequestMigration', migrationId, request: req, imageRoots, meta },
      initialState(),
    );
    await eventLog.append(requested!, { expectedLastSeq: 0 });
    return migrationId;
  }

  it('is cancelled before any step when its CT was admitted again meanwhile', async () => {
    // Given CT 1001 admitted again and migrating, after the admission of a slow request for it was reaped
    await beat('n10a', 'n10b');
    const again = await api.migrate(request('readmitted', '1001', 'n10a', 'n10b'));
    assert.ok(again.ok, JSON.stringify(again));

    // When the slow request's MigrationRequested lands
    const late = await landsLate(request('landed-late', '1001', 'n10b', 'n10a'));

    // Then that migration is rolled back before any step, saying why (its log then sealed); the CT stays with the
    // other migration
    await awaitEvent(eventLog, late, (e) => e.type === 'MigrationSealed', 20_000);
    const events = await inLog(late);
    assert.deepEqual(
      events.map((e) => e.type),
      ['MigrationRequested', 'CancelRequested', 'RollbackStarted', 'MigrationRolledBack', 'MigrationSealed'],
    );
    const cancel = events[1];
    assert.ok(
      cancel?.type === 'CancelRequested' && cancel.data.reason.includes(again.migrationId),
      JSON.stringify(cancel),
    );
    const ids = (await readLedger()).entries.map((e) => e.migrationId);
    assert.ok(ids.includes(again.migrationId) && !ids.includes(late), JSON.stringify(ids));
  });

  it('is admitted again, and goes on, when its CT and nodes are free', async () => {
    await beat('n11a', 'n11b');
    const late = await landsLate(request('landed-late-free', '1101', 'n11a', 'n11b'));
    await awaitEvent(eventLog, late, (e) => e.type === 'StepIntended', 20_000);
    assert.ok((await readLedger()).entries.some((e) => e.migrationId === late));
    assert.equal(codeOf(await api.migrate(request('after-late', '1101', 'n11b', 'n11a'))), 'HAUL_CT_BUSY');
  });
});

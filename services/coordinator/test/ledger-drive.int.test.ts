import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import {
  admissionLedgerKey,
  buckets,
  connectBus,
  createEventLog,
  decodeJson,
  encodeJson,
  ensureTopology,
  openBucket,
  sendCommand,
  streams,
  type EventLog,
} from '@haul/bus';
import { decide, decideUntilStable, fold, initialState, type DecideMeta } from '@haul/domain';
import { createValidators } from '@haul/schemas';
import { awaitEvent, startNatsServer, tempIdentities, type NatsServer } from '@haul/test';

/** Signing on: the coordinator and this test's appends sign as the coordinator. */
const ids = tempIdentities();
const trust = ids.trust('coordinator');
import type { AdmissionEntry } from '../src/admission-ledger.ts';
import { createCoordinator } from '../src/app.ts';
import { createProcessManager } from '../src/process-manager.ts';

const validators = createValidators();
const silent = pino({ level: process.env['HAUL_TEST_LOG'] ?? 'silent' });
/** No resync: a migration is only driven because its events came, or because the ledger lists it. */
const settings = { node: 'coordinator', frozenLeaseMs: 60_000, maxAttempts: 3, resyncMs: 3_600_000 };

let server: NatsServer;
let nc: NatsConnection;
let eventLog: EventLog;
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'ledger-drive-test' });
  await ensureTopology(nc);
  eventLog = createEventLog(nc, validators, trust);
});
after(async () => {
  await nc?.drain();
  await server?.stop();
});

/** A coordinator on its own connection (a restart is a new connection, as after a crash). */
async function startCoordinator(reconcileMs?: number) {
  const own = await connectBus({ servers: server.url, name: 'ledger-drive-coordinator' });
  const cfg = { ...settings, maxMigrationsPerNode: 2, ...(reconcileMs ? { reconcileMs } : {}) };
  const coordinator = createCoordinator(own, validators, cfg, silent, { trust });
  await coordinator.start();
  return {
    async stop() {
      await coordinator.stop();
      await own.drain();
    },
  };
}

const metaAt = (now: number): DecideMeta => ({
  ...createProcessManager(nc, validators, eventLog, settings, silent, trust).meta(),
  now: new Date(now).toISOString(),
});

/** The preflight steps' timeout in these tests: they run out soon after their intents. */
const quickMs = 1500;

/**
 * A migration of `ctid` whose preflight steps were intended at `intendedAt`, now (their timeout runs out 1.5 s from
 * now), as a coordinator appended them and sent their commands; with its admission entry.
 */
async function preflighting(
  mid: string,
  ctid: string,
): Promise<{ entry: AdmissionEntry; intendedAt: number }> {
  const intendedAt = Date.now();
  const request = { requestId: `r-${mid}`, ctid, source: 'node-a', target: 'node-b' };
  const imageRoots = { source: '/img/a', target: '/img/b' };
  const [requested] = decide(
    { kind: 'RequestMigration', migrationId: mid, request, imageRoots, meta: metaAt(intendedAt) },
    initialState(),
  );
  let { seq } = await eventLog.append(requested!, { expectedLastSeq: 0 });
  const meta = metaAt(intendedAt);
  const { events } = decideUntilStable(
    { kind: 'Advance', meta: { ...meta, timeoutsMs: { ...meta.timeoutsMs, quick: quickMs } } },
    fold([requested!], initialState()),
  );
  for (const e of events) {
    seq = (await eventLog.append(e, { expectedLastSeq: seq })).seq;
    // and its command sent then, as that coordinator sends it (one that never sent it would have the step's time
    // count from the send of the coordinator that drives it now: folded-state.int)
    if (e.type === 'StepIntended') await sendCommand(nc, validators, trust, e.data);
  }
  const admittedAt = new Date(intendedAt).toISOString();
  return { entry: { migrationId: mid, ...request, imageRoots, admittedAt }, intendedAt };
}

/** Add entries to the admission ledger (compare-and-set, as a coordinator admits). */
async function admit(...added: AdmissionEntry[]): Promise<void> {
  const kv = await openBucket(nc, buckets.admission);
  const e = await kv.get(admissionLedgerKey);
  if (e?.operation !== 'PUT')
    return void (await kv.create(admissionLedgerKey, encodeJson({ entries: added })));
  const { entries } = decodeJson(e.value) as { entries: AdmissionEntry[] };
  await kv.update(admissionLedgerKey, encodeJson({ entries: [...entries, ...added] }), e.revision);
}

/**
 * No coordinator consumer holds anything of the events so far: the next one is created for new events only. What
 * a coordinator that consumed (and acked) every event and then died leaves behind.
 */
async function nothingToRedeliver(): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.delete(streams.events, 'coordinator').catch(() => false);
}

async function timedOut(mid: string, intendedAt: number): Promise<void> {
  const failed = await awaitEvent(
    eventLog,
    mid,
    (e) => e.type === 'StepFailed' && e.data.error.code === 'HAUL_STEP_TIMEOUT',
    20_000,
  );
  assert.ok(Date.parse(failed.time) > intendedAt + quickMs, failed.time);
}

it('a starting coordinator drives every migration of the admission ledger, also one no event will come for', async () => {
  // Given a migration in the ledger whose steps time out soon, whose events no consumer will deliver (they were
  // appended before the coordinator consumer existed, as at a first start) and which has no status
  await nothingToRedeliver();
  const { entry, intendedAt } = await preflighting('m-drive-start', '101');
  await admit(entry);

  // When a coordinator starts
  const coordinator = await startCoordinator();
  try {
    // Then it gives up the overdue step from its own timer
    await timedOut(entry.migrationId, intendedAt);
  } finally {
    await coordinator.stop();
  }
});

it('a running coordinator drives, at its next round, a ledger migration it never received an event of', async () => {
  // Given a running coordinator, and a migration it never heard of: another coordinator consumed all its events and
  // died (here: its events came before this coordinator's consumer, its entry after this coordinator started)
  await nothingToRedeliver();
  const { entry, intendedAt } = await preflighting('m-drive-running', '102');
  const coordinator = await startCoordinator(500);
  try {
    await admit(entry);

    // Then the coordinator picks it up from the ledger and gives up its overdue step
    await timedOut(entry.migrationId, intendedAt);
  } finally {
    await coordinator.stop();
  }
});

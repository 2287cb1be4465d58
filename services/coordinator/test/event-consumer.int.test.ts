import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { connectBus, createEventLog, ensureTopology, streams } from '@haul/bus';
import { decide, initialState } from '@haul/domain';
import { createValidators } from '@haul/schemas';
import { awaitEvent, freePort, startNatsServer, tempIdentities, type NatsServer } from '@haul/test';
import { createCoordinator } from '../src/app.ts';
import { createProcessManager } from '../src/process-manager.ts';

let server: NatsServer;
let nc: NatsConnection;
let coordinator: ReturnType<typeof createCoordinator>;
const validators = createValidators();
const settings = { node: 'coordinator', frozenLeaseMs: 60_000, maxAttempts: 3 };
const trust = tempIdentities().trust('coordinator');
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'event-consumer-test' });
  await ensureTopology(nc);
  coordinator = createCoordinator(
    nc,
    validators,
    { ...settings, maxMigrationsPerNode: 2 },
    pino({ level: process.env['HAUL_TEST_LOG'] ?? 'silent' }),
    { trust },
  );
  await coordinator.start();
});
after(async () => {
  await coordinator?.stop();
  await nc?.drain();
  await server?.stop();
});

it('parks events it cannot decode and keeps advancing other migrations', async () => {
  // Given 1,100 messages in the event stream that are no events: not JSON, not valid, on a subject of another id
  const js = jetstream(nc);
  const enc = new TextEncoder();
  const junk = 1100;
  for (let i = 0; i < junk; i++) {
    const body = i % 3 === 0 ? 'not json' : i % 3 === 1 ? '{"type":"StepSucceeded"}' : '[]';
    await js.publish(`haul.events.junk.${i}`, enc.encode(body));
  }

  // When a migration is requested after them
  const log = createEventLog(nc, validators, trust);
  const mid = 'm-after-junk';
  const [requested] = decide(
    {
      kind: 'RequestMigration',
      migrationId: mid,
      request: { requestId: 'r-after-junk', ctid: '101', source: 'node-a', target: 'node-b' },
      imageRoots: { source: '/img/a', target: '/img/b' },
      meta: createProcessManager(nc, validators, log, settings, pino({ level: 'silent' }), trust).meta(),
    },
    initialState(),
  );
  await log.append(requested!);

  // Then the coordinator advances it (its preflight is intended), and every junk message was parked, none pending
  await awaitEvent(log, mid, (e) => e.type === 'StepIntended', 120_000);
  const letters = await (await js.consumers.get(streams.deadLetters)).consume();
  let parked = 0;
  const reasons = new Set<string>();
  for await (const m of letters) {
    reasons.add(m.json<{ reason: string }>().reason.split(':')[0]!);
    if (++parked === junk) break;
  }
  assert.deepEqual([...reasons].sort(), ['not JSON', 'not a valid event']);
  const jsm = await jetstreamManager(nc);
  const c = await jsm.consumers.info(streams.events, 'coordinator');
  assert.equal(c.num_ack_pending, 0);
});

/** Whether anything listens on this loopback port: 'connected', or the connect's error code. */
const listening = (port: number) =>
  new Promise<string>((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => (sock.destroy(), resolve('connected')));
    sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });

for (const when of ['its first reconciliation', 'the making of its event consumer'] as const)
  it(`given a stop during ${when}, the start ends there and the stop waits for it: nothing is left running`, async () => {
    // Given a coordinator that serves metrics, on its own connection; one whose stop is asked as it makes its durable
    // event consumer (a JetStream API request on that connection)
    const port = await freePort();
    const own = await connectBus({ servers: server.url, name: 'event-consumer-test-stopped' });
    let stopAsked: Promise<void> | undefined;
    const settled: string[] = [];
    const stop = () => c.stop().then(() => void settled.push('stop'));
    const seen =
      when === 'its first reconciliation'
        ? own
        : new Proxy(own, {
            get(target, key, receiver) {
              const v: unknown = Reflect.get(target, key, receiver);
              if (key !== 'request') return typeof v === 'function' ? (v as () => unknown).bind(target) : v;
              return (subject: string, ...rest: unknown[]) => {
                if (subject.includes('CONSUMER.') && subject.includes('.coordinator')) stopAsked ??= stop();
                return (target.request as (...a: unknown[]) => unknown).call(target, subject, ...rest);
              };
            },
          });
    const c = createCoordinator(
      seen,
      validators,
      { ...settings, maxMigrationsPerNode: 2 },
      pino({ level: process.env['HAUL_TEST_LOG'] ?? 'silent' }),
      { trust, metrics: { host: '127.0.0.1', port } },
    );

    // When it is stopped while it starts
    const started = c.start().then(() => void settled.push('start'));
    if (when === 'its first reconciliation') stopAsked = stop();
    await started;
    assert.ok(stopAsked, 'the stop was asked');
    await stopAsked;

    // Then the stop ended after the start (before, it ended at once, and the start went on after it), and nothing
    // listens on its metrics port
    assert.deepEqual(settled, ['start', 'stop']);
    assert.equal(await listening(port), 'ECONNREFUSED');
    await own.drain();
  });

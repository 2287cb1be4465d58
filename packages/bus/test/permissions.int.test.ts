import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  AuthorizationError,
  headers,
  PermissionViolationError,
  type NatsConnection,
} from '@nats-io/transport-node';
import { createUser } from '@nats-io/nkeys';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { StepCommand } from '@haul/schemas';
import { createValidators, executorServices } from '@haul/schemas';
import {
  admissionLedgerKey,
  awaitTopology,
  buckets,
  BusConfigError,
  busConfigFromEnv,
  connectBus,
  consumerLeaderStepDown,
  coordinatorConsumer,
  createCommandQueue,
  createEventLog,
  createLogger,
  decodeJson,
  encodeJson,
  ensureTopology,
  eventFactory,
  inboxPrefix,
  openBucket,
  permissionsFor,
  sendCommand,
  serveDiscovery,
  streams,
  subjects,
  type Identity,
} from '@haul/bus';
import {
  createTestSecrets,
  loadTestIdentities,
  natsClientCertEnv,
  secretsEnv,
  stepIntended,
  startNatsServer,
  testAuth,
  type NatsServer,
  type TestSecrets,
} from '@haul/test';

/**
 * The permission matrix against a real nats-server running the configuration `haul init-cluster` wrote: every
 * identity can do what haul needs it to (each through the code that does it), and the server refuses everything in
 * the matrix below that its role may not do.
 */
const run = promisify(execFile);
const validators = createValidators();
const log = createLogger('permissions-test', 'test');
let secrets: TestSecrets;
/** The signing side of an identity: the same nkey it logs in with. */
const trustOf = (name: string) => loadTestIdentities(secrets.dir).trust(name);
let server: NatsServer;
const conns = new Map<string, NatsConnection>();

async function as(name: string): Promise<NatsConnection> {
  let nc = conns.get(name);
  if (!nc) {
    const cfg = busConfigFromEnv(name, { HAUL_NATS_URL: server.url, ...secretsEnv(secrets.dir, name) });
    nc = await connectBus(cfg, { maxReconnectAttempts: 0 });
    conns.set(name, nc);
  }
  return nc;
}

before(async () => {
  secrets = await createTestSecrets(['node-a', 'node-b'], testAuth());
  server = await startNatsServer({ secrets: secrets.dir });
  await ensureTopology(await as('coordinator'), {}, log);
});
after(async () => {
  for (const nc of conns.values()) await nc.close();
  await server?.stop();
  await secrets?.remove();
});

/** The permission error somewhere in err's cause chain (a request wraps it in a RequestError). */
function permissionError(err: unknown): PermissionViolationError | undefined {
  for (let e = err; e; e = (e as { cause?: unknown }).cause)
    if (e instanceof PermissionViolationError) return e;
  return undefined;
}

async function assertPublishDenied(nc: NatsConnection, subject: string): Promise<void> {
  const err = await nc.request(subject, encodeJson({}), { timeout: 5000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const pe = permissionError(err);
  assert.ok(pe, `publish to ${subject} was not refused by the server (${String(err)})`);
  assert.equal(pe.operation, 'publish');
  assert.equal(pe.subject, subject);
}

async function assertSubscribeDenied(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject);
  // The server answers a SUB it refuses with an error before the PONG of the flush that follows it.
  await nc.flush();
  await new Promise((r) => setImmediate(r));
  if (!sub.isClosed()) sub.unsubscribe();
  const pe = permissionError(await sub.closed);
  assert.ok(pe, `subscription to ${subject} was not refused by the server`);
  assert.equal(pe.operation, 'subscription');
}

const mid = 'm-perm-0001';
const command = (node: string, executor: 'agent' | 'streamer', n: number): StepCommand => ({
  commandId: `${mid}:removeFiles:${node}:${executor}:${n}`,
  migrationId: mid,
  node,
  executor,
  attempt: 1,
  step: 'removeFiles',
  timeoutMs: 30_000,
  args: { paths: ['/var/local/haul/none'] },
});

describe('every identity can do what haul needs of it', () => {
  it('coordinator: its durable of every event, appends, commands, statuses, the admission ledger, node reads', async () => {
    const nc = await as('coordinator');
    const eventLog = createEventLog(nc, validators, trustOf('coordinator'));
    const ev = eventFactory({ service: 'coordinator', node: 'coordinator' });
    await eventLog.append(ev(mid, 'CancelRequested', { reason: 'matrix' }, `${mid}:1`));
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(streams.events, {
      durable_name: coordinatorConsumer,
      filter_subject: subjects.eventsAll,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
    });
    const consumer = await jetstream(nc).consumers.get(streams.events, coordinatorConsumer);
    const msg = await consumer.next({ expires: 5000 });
    assert.equal(msg?.subject, subjects.events(mid));
    assert.ok(await msg.ackAck(), 'its ack is taken');
    for (const node of ['node-a', 'node-b'])
      for (const executor of ['agent', 'streamer'] as const) {
        // An executor runs only a command the coordinator signed and its migration's log intends.
        await eventLog.append(stepIntended(command(node, executor, 1)));
        await sendCommand(nc, validators, trustOf('coordinator'), command(node, executor, 1));
      }
    const status = await openBucket(nc, buckets.status);
    await status.put(mid, encodeJson({ migrationId: mid }));
    const keys: string[] = [];
    for await (const k of await status.keys()) keys.push(k);
    assert.deepEqual(keys, [mid]);
    const ledger = await openBucket(nc, buckets.admission);
    const rev = await ledger.create(admissionLedgerKey, encodeJson([]));
    await ledger.update(admissionLedgerKey, encodeJson([mid]), rev);
    assert.deepEqual(decodeJson((await ledger.get(admissionLedgerKey))!.value), [mid]);
    assert.equal(await (await openBucket(nc, buckets.nodes)).get('node-a'), null);
    // Its watch on the command durables' leaders (consumer-leaders.ts): list them, ask one to step down. One server
    // is no cluster: the API answers with an error, and answers at all only when the server let the request through.
    const durables: string[] = [];
    for await (const c of jsm.consumers.list(streams.commands)) durables.push(c.name);
    const down = await nc.request(consumerLeaderStepDown(streams.commands, 'agent-node-a'), '', {
      timeout: 5000,
    });
    assert.match(new TextDecoder().decode(down.data), /consumer_leader_stepdown_response/);
  });

  for (const executor of ['agent', 'streamer'] as const)
    it(`${executor}@node-a: waits for the topology, consumes its own commands, parks and records a refusal`, async () => {
      const nc = await as(`${executor}@node-a`);
      assert.equal(await awaitTopology(nc, log, 5000), undefined);
      const trust = trustOf(`${executor}@node-a`);
      const eventLog = createEventLog(nc, validators, trust);
      const service = executorServices[executor];
      const queue = createCommandQueue({
        nc,
        validators,
        eventLog,
        trust,
        log,
        actor: { service, node: 'node-a' },
        executor,
      });
      const ac = new AbortController();
      const handled = new Promise<string>((resolve) => {
        void queue.consume(async (d) => {
          d.msg.working();
          await queue.refuse(d.msg, { code: 'HAUL_TEST', message: 'refused by the matrix test' }, d.command);
          resolve(d.command.commandId);
          ac.abort();
        }, ac.signal);
      });
      assert.equal(await handled, command('node-a', executor, 1).commandId);
      const { events } = await eventLog.read(mid);
      assert.ok(events.some((e) => e.event.type === 'CommandRejected' && e.event.actor.service === service));
    });

  it('agent@node-a: its heartbeat, and discovery', async () => {
    const nc = await as('agent@node-a');
    const nodes = await openBucket(nc, buckets.nodes);
    await nodes.put('node-a', encodeJson({ node: 'node-a' }));
    serveDiscovery(nc, 'node-agent', 'node-a');
    const ops = await as('ops');
    const replies = await ops.requestMany(subjects.discovery, encodeJson({}), {
      strategy: 'count',
      maxMessages: 1,
      maxWait: 5000,
    });
    for await (const m of replies) assert.equal((decodeJson(m.data) as { node: string }).node, 'node-a');
  });

  it('streamer@node-a offers a transfer to streamer@node-b, which answers', async () => {
    const b = await as('streamer@node-b');
    b.subscribe(subjects.streamOffer('node-b'), {
      callback: (_e, m) => void m.respond(encodeJson({ ok: true })),
    });
    await b.flush();
    const reply = await (await as('streamer@node-a')).request(subjects.streamOffer('node-b'), encodeJson({}));
    assert.deepEqual(decodeJson(reply.data), { ok: true });
  });

  it('scheduler and ops: the scheduler API, the event log, node heartbeats', async () => {
    const coordinator = await as('coordinator');
    for (const s of [subjects.apiMigrate, subjects.apiStatus])
      coordinator.subscribe(s, {
        queue: 'coordinator',
        callback: (_e, m) => void m.respond(encodeJson({ ok: true })),
      });
    await coordinator.flush();
    const scheduler = await as('scheduler');
    assert.deepEqual(decodeJson((await scheduler.request(subjects.apiMigrate, encodeJson({}))).data), {
      ok: true,
    });
    const ops = await as('ops');
    assert.deepEqual(decodeJson((await ops.request(subjects.apiStatus, encodeJson({}))).data), { ok: true });
    for (const nc of [scheduler, ops]) {
      const eventLog = createEventLog(nc, validators, trustOf('ops'));
      assert.ok((await eventLog.read(mid)).events.length >= 1);
      for await (const e of eventLog.follow({ fromSeq: 1 })) {
        assert.equal(e.event.migrationId, mid);
        break;
      }
      const nodes = await openBucket(nc, buckets.nodes);
      const keys: string[] = [];
      for await (const k of await nodes.keys()) keys.push(k);
      assert.deepEqual(keys, ['node-a']);
      assert.ok(await nodes.get('node-a'));
    }
  });
});

type Who = (id: Identity) => boolean;
const none: Who = () => false;
const role =
  (...roles: Identity['role'][]): Who =>
  (id) =>
    roles.includes(id.role);
const exactly =
  (name: string): Who =>
  (id) =>
    id.name === name;

/** Publishes the matrix checks: the subject and who may publish it. Everyone else must be refused. */
const publishMatrix: [string, Who][] = [
  [subjects.events(mid), role('coordinator', 'agent', 'streamer')],
  [subjects.commands('node-a', 'agent'), role('coordinator')],
  [subjects.commands('node-b', 'streamer'), role('coordinator')],
  [subjects.apiMigrate, role('scheduler')],
  [subjects.apiCancel, role('scheduler')],
  [subjects.apiRetry, role('scheduler')],
  [subjects.apiResolve, role('scheduler')],
  [subjects.apiStatus, role('scheduler', 'ops')],
  [subjects.apiList, role('scheduler', 'ops')],
  [subjects.apiCheck, role('scheduler', 'ops')],
  [subjects.inspect('node-a'), role('coordinator')],
  [subjects.discovery, role('scheduler', 'ops')],
  [subjects.streamOffer('node-b'), role('streamer')],
  [subjects.nudge('node-a'), none],
  [subjects.deadLetters('node-agent', 'node-a'), exactly('agent@node-a')],
  [subjects.deadLetters('image-streamer', 'node-b'), exactly('streamer@node-b')],
  [subjects.deadLetters('coordinator', 'coordinator'), role('coordinator')],
  [`$KV.${buckets.nodes}.node-a`, exactly('agent@node-a')],
  [`$KV.${buckets.nodes}.node-c`, none],
  [`$KV.${buckets.status}.${mid}`, role('coordinator')],
  [`$KV.${buckets.admission}.${admissionLedgerKey}`, role('coordinator')],
  [`$KV.${buckets.progress}.${mid}.node-a.bS1wZXJtLTAx`, exactly('streamer@node-a')],
  [`$KV.${buckets.progress}.${mid}.node-c.bS1wZXJtLTAx`, none],
  [`$JS.API.STREAM.MSG.GET.KV_${buckets.progress}`, role('coordinator', 'scheduler', 'ops')],
  [`$JS.API.STREAM.CREATE.${streams.events}`, role('coordinator')],
  [`$JS.API.STREAM.UPDATE.${streams.commands}`, role('coordinator')],
  [`$JS.API.STREAM.DELETE.${streams.events}`, none],
  [`$JS.API.STREAM.PURGE.${streams.events}`, none],
  [`$JS.API.STREAM.DELETE.KV_${buckets.nodes}`, none],
  [`$JS.API.STREAM.PURGE.KV_${buckets.admission}`, none],
  [`$JS.API.STREAM.MSG.DELETE.${streams.commands}`, none],
  [`$JS.API.STREAM.INFO.${streams.commands}`, role('coordinator')],
  [`$JS.API.STREAM.MSG.GET.${streams.commands}`, role('coordinator')],
  [`$JS.API.STREAM.MSG.GET.${streams.deadLetters}`, none],
  [`$JS.API.STREAM.MSG.GET.KV_${buckets.admission}`, role('coordinator')],
  [`$JS.API.STREAM.MSG.GET.KV_${buckets.status}`, role('coordinator')],
  [`$JS.API.CONSUMER.DELETE.${streams.commands}.agent-node-a`, none],
  [`$JS.API.CONSUMER.DELETE.${streams.events}.${coordinatorConsumer}`, none],
  [`$JS.API.CONSUMER.CREATE.${streams.commands}.agent-node-a.haul.cmd.node-a.agent`, exactly('agent@node-a')],
  [`$JS.API.CONSUMER.CREATE.${streams.commands}.spy.haul.cmd.node-a.agent`, none],
  [`$JS.API.CONSUMER.CREATE.${streams.commands}.spy.haul.cmd.>`, none],
  [`$JS.API.CONSUMER.CREATE.${streams.commands}`, none],
  [`$JS.API.CONSUMER.DURABLE.CREATE.${streams.commands}.agent-node-a`, none],
  [`$JS.API.CONSUMER.CREATE.${streams.events}.${coordinatorConsumer}.haul.events.>`, role('coordinator')],
  [`$JS.API.CONSUMER.CREATE.${streams.deadLetters}.spy.haul.dead.>`, none],
  [`$JS.API.CONSUMER.MSG.NEXT.${streams.commands}.agent-node-a`, exactly('agent@node-a')],
  [`$JS.API.CONSUMER.MSG.NEXT.${streams.commands}.streamer-node-b`, exactly('streamer@node-b')],
  [`$JS.API.CONSUMER.MSG.NEXT.${streams.events}.${coordinatorConsumer}`, role('coordinator')],
  [`$JS.ACK.${streams.commands}.agent-node-b.1.1.1.1.0`, exactly('agent@node-b')],
  [`$JS.ACK.${streams.events}.${coordinatorConsumer}.1.1.1.1.0`, role('coordinator')],
  ['_INBOX.someone.1', none],
];

/** Subscriptions the matrix checks: the subject and who may subscribe to it. */
const subscribeMatrix: [string, Who][] = [
  [subjects.commandsAll, none],
  [subjects.commands('node-a', 'agent'), none],
  [subjects.eventsAll, role('streamer')], // heard as a wake-up to read the log (a give-up), never believed as events
  [subjects.apiMigrate, role('coordinator')],
  [subjects.streamOffer('node-a'), exactly('streamer@node-a')],
  [subjects.apiCheck, role('coordinator')],
  [subjects.inspect('node-a'), exactly('agent@node-a')],
  [subjects.discovery, role('coordinator', 'agent', 'streamer')],
  ['_INBOX.>', none],
  ['$KV.>', none],
  ['$JS.ACK.>', none],
  ['$JS.API.>', none],
  ['>', none],
];

/** NATS subject matching: does `pattern` (with * and >) cover `subject` (whose own wildcards are literal tokens)? */
function covers(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

function allowedByTable(id: Identity, op: 'publish' | 'subscribe', subject: string): boolean {
  const p = permissionsFor(id, 'UKEY')[op];
  return p.allow.some((g) => covers(g.subject, subject)) && !p.deny.some((g) => covers(g.subject, subject));
}

describe("a node's own key of a bucket", () => {
  it("cannot purge the bucket's other keys with a rollup (Nats-Rollup: all): another node's heartbeat stays", async () => {
    // Given node-a's heartbeat in haul-nodes
    const a = await as('agent@node-a');
    await (await openBucket(a, buckets.nodes)).put('node-a', encodeJson({ node: 'node-a' }));

    // When agent@node-b writes its own key with a rollup of the whole bucket
    const b = await as('agent@node-b');
    const h = headers();
    h.set('Nats-Rollup', 'all');
    await assert.rejects(
      jetstream(b).publish(`$KV.${buckets.nodes}.node-b`, encodeJson({ node: 'node-b' }), { headers: h }),
      /rollup/i,
    );

    // Then node-a's heartbeat is still there (before, the bucket kept only node-b's key)
    const nodes = await openBucket(await as('ops'), buckets.nodes);
    assert.ok(await nodes.get('node-a'), "node-a's heartbeat");
  });
});

describe('the matrix: everything else is refused by the server', () => {
  it('the permission table agrees with the matrix (who may, who may not)', () => {
    for (const id of secrets.registry.identities) {
      for (const [subject, who] of publishMatrix)
        assert.equal(allowedByTable(id, 'publish', subject), who(id), `${id.name} publish ${subject}`);
      for (const [subject, who] of subscribeMatrix)
        assert.equal(allowedByTable(id, 'subscribe', subject), who(id), `${id.name} subscribe ${subject}`);
      assert.ok(allowedByTable(id, 'subscribe', `${inboxPrefix('UKEY')}.x.1`), `${id.name}: its own inbox`);
    }
  });

  it('every identity is refused every publish and subscription the matrix denies it', async () => {
    let denied = 0;
    for (const id of secrets.registry.identities) {
      const nc = await as(id.name);
      for (const [subject, who] of publishMatrix)
        if (!who(id)) {
          await assertPublishDenied(nc, subject);
          denied++;
        }
      for (const [subject, who] of subscribeMatrix)
        if (!who(id)) {
          await assertSubscribeDenied(nc, subject);
          denied++;
        }
      const other = secrets.registry.identities.find((o) => o.name !== id.name)!;
      await assertSubscribeDenied(nc, `${inboxPrefix(other.publicKey)}.>`);
      denied++;
    }
    assert.ok(denied > 250, `${denied} refusals checked`);
  });
});

/** The server's first words to a plain TCP client, and whether it answers a PING without TLS. */
function plainTcpSession(port: number): Promise<{ info: string; pong: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = connectTcp(port, '127.0.0.1');
    let text = '';
    sock.on('data', (b: Buffer) => {
      if (!text) sock.write('CONNECT {"verbose":false,"pedantic":false,"tls_required":false}\r\nPING\r\n');
      text += b.toString('latin1');
    });
    sock.once('error', () => undefined);
    sock.once('close', () => resolve({ info: text.split('\r\n')[0] ?? '', pong: text.includes('PONG') }));
    sock.setTimeout(10_000, () => reject(new Error('the server neither answered nor closed')));
  });
}

const filterMismatch = 10131;
const nameMismatch = 10017;

describe('consumer names and filters in the API subject hold', () => {
  it("an agent cannot widen its durable to every node's commands, nor create another durable under its subject", async () => {
    const nc = await as('agent@node-a');
    const subject = `$JS.API.CONSUMER.CREATE.${streams.commands}.agent-node-a.haul.cmd.node-a.agent`;
    const config = { ack_policy: 'explicit' };
    const codes: number[] = [];
    for (const c of [
      { durable_name: 'agent-node-a', name: 'agent-node-a', filter_subject: subjects.commandsAll },
      { durable_name: 'agent-node-a', name: 'agent-node-a' },
      { durable_name: 'spy', name: 'spy', filter_subject: subjects.commands('node-a', 'agent') },
    ]) {
      const reply = await nc.request(
        subject,
        encodeJson({ stream_name: streams.commands, config: { ...config, ...c } }),
      );
      const answer = decodeJson(reply.data) as { error?: { err_code: number } };
      codes.push(answer.error?.err_code ?? 0);
    }
    // JetStream API codes: the filter, then the name, in the request differ from the create subject's.
    assert.deepEqual(codes, [filterMismatch, filterMismatch, nameMismatch]);
  });
});

describe('TLS and authentication', () => {
  it('a client that does not speak TLS is refused', async () => {
    const s = await plainTcpSession(server.port);
    assert.match(s.info, /"tls_required":true/);
    assert.equal(s.pong, false);
  });

  it('a client that trusts another CA refuses the server', async () => {
    const other = join(secrets.dir, '..', 'other-ca');
    await mkdir(other);
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      '/CN=other',
      '-keyout',
      join(other, 'key.pem'),
      '-out',
      join(other, 'ca.pem'),
      '-days',
      '2',
    ]);
    const env = {
      ...secretsEnv(secrets.dir, 'ops'),
      HAUL_TLS_CA_FILE: join(other, 'ca.pem'),
      HAUL_NATS_URL: server.url,
    };
    await assert.rejects(
      connectBus(busConfigFromEnv('ops', env), { maxReconnectAttempts: 0 }),
      (err: unknown) => err instanceof BusConfigError && err.message.includes(join(other, 'ca.pem')),
    );
  });

  it('a client without an nkey, or with one the cluster does not know, is refused', async () => {
    // TLS as the server requires it (the cluster CA, a client certificate it signed), and no nkey.
    const tlsOnly = {
      HAUL_TLS_CA_FILE: join(secrets.dir, 'ca.pem'),
      ...natsClientCertEnv(secrets.dir, 'ops'),
      HAUL_NATS_URL: server.url,
    };
    const refused = (err: unknown) =>
      err instanceof BusConfigError && err.cause instanceof AuthorizationError;
    await assert.rejects(connectBus(busConfigFromEnv('anon', tlsOnly), { maxReconnectAttempts: 0 }), refused);
    const stranger = join(secrets.dir, '..', 'stranger.nk');
    await writeFile(stranger, new TextDecoder().decode(createUser().getSeed()), { mode: 0o600 });
    const env = { ...tlsOnly, HAUL_NKEY_SEED_FILE: stranger };
    await assert.rejects(connectBus(busConfigFromEnv('stranger', env), { maxReconnectAttempts: 0 }), refused);
  });
});

describe('a consumer pushing stored messages onto a core subject (nats-server#8274)', () => {
  it('an agent can have the server deliver what it appended onto haul.discovery; discovery does not answer it', async () => {
    const agentB = await as('agent@node-b');
    const forged = 'haul.events.m-push-0001';
    await jetstream(agentB).publish(forged, encodeJson({ forged: true }));
    let answered = 0;
    const responder = await as('agent@node-a');
    const sub = serveDiscovery(responder, 'node-agent', 'node-a', () => ({ n: ++answered }));
    const observer = await as('coordinator');
    const seen = new Promise<string>((resolve) => {
      const o = observer.subscribe(subjects.discovery, {
        callback: (_e, m) => {
          o.unsubscribe();
          resolve(m.subject);
        },
      });
    });
    await observer.flush();
    // Allowed by its permissions: an ordered-consumer-like create, filter haul.events.<id>, but push.
    await (
      await jetstreamManager(agentB)
    ).consumers.add(streams.events, {
      name: 'push-spy',
      filter_subject: forged,
      deliver_subject: subjects.discovery,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    });
    assert.equal(await seen, forged, 'the server delivered it, under the subject it was stored as');
    await responder.flush(); // the responder has handled everything the server sent it before the PONG
    assert.equal(answered, 0);
    sub.unsubscribe();
  });
});

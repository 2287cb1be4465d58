import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { AuthorizationError, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { createValidators, type MigrationEvent, type StepCommand } from '@haul/schemas';
import {
  busConfigFromEnv,
  connectBus,
  identityEnv,
  createCommandQueue,
  createEventLog,
  BusConfigError,
  createLogger,
  ensureTopology,
  eventFactory,
  parseRegistry,
  streams,
  subjects,
  type Logger,
  type Trust,
} from '@haul/bus';
import {
  createTestSecrets,
  identityFileIn,
  loadTestIdentities,
  publishAs,
  secretsEnv,
  startNatsServer,
  stepIntended,
  testAuth,
  type NatsServer,
  type TestIdentities,
  type TestSecrets,
  until,
} from '@haul/test';
import { exitCode, main } from '@haul/cli';
import { createOutput } from '../src/output.ts';

/**
 * One identity's key rotated on a running cluster (docs/security.md, "Rotating keys"): agent@node-a writes events with
 * key A; `haul rotate-key` (reading the event stream's last sequence from NATS) retires A at that sequence and gives
 * it key B; nats-server reloads the configuration it rendered. A reader with the new registry believes A's events
 * up to there and B's after; an event signed with A and stored afterwards, and a command signed with A, are refused.
 * key-rotation-jwt.int.test.ts runs the same in operator mode (.creds files; A revoked in the account's JWT).
 */
const auth = testAuth();
const validators = createValidators();
const log = createLogger('key-rotation-test', 'test');
const mid = 'm-rotate-0001';
const agentA = 'agent@node-a';
let secrets: TestSecrets;
let server: NatsServer;
let oldSeedDir: string;
/** The keys as they were before the rotation (key A for agent@node-a), and as they are after. */
let before_: TestIdentities;
let after_: TestIdentities;
const conns: NatsConnection[] = [];

/** The copy of agent@node-a's identity file (key A) kept from before the rotation. */
const oldIdentityFile = () => join(oldSeedDir, auth === 'jwt' ? 'a.creds' : 'a.nk');

async function connectAs(
  name: string,
  identityFile?: string,
  extra: Partial<NodeConnectionOptions> = {},
): Promise<NatsConnection> {
  const setting = identityFileIn(secrets.dir, name).setting;
  const env = {
    HAUL_NATS_URL: server.url,
    ...secretsEnv(secrets.dir, name),
    ...(identityFile ? { [identityEnv[setting]]: identityFile } : {}),
  };
  const nc = await connectBus(busConfigFromEnv(name, env), { maxReconnectAttempts: 0, ...extra });
  conns.push(nc);
  return nc;
}

const command = (n: number): StepCommand => ({
  commandId: `${mid}:removeFiles:node-a:${n}`,
  migrationId: mid,
  node: 'node-a',
  executor: 'agent',
  attempt: 1,
  step: 'removeFiles',
  timeoutMs: 30_000,
  args: { paths: ['/var/local/haul/none'] },
});
const agentEvent = eventFactory({ service: 'node-agent', node: 'node-a' });
const failed = (n: number, id: string): MigrationEvent =>
  agentEvent(
    mid,
    'StepFailed',
    {
      commandId: command(n).commandId,
      step: 'removeFiles',
      node: 'node-a',
      attempt: 1,
      error: { code: 'HAUL_TEST', message: `attempt ${id}` },
    },
    `${mid}:${id}`,
  );

/** The events of the migration a reader with this trust believes, by id, and how many it refused. */
async function believed(nc: NatsConnection, trust: Trust): Promise<{ ids: string[]; refused: number }> {
  const { events } = await createEventLog(nc, validators, trust).read(mid);
  return { ids: events.map((e) => e.event.eventId), refused: trust.rejections };
}

/** What the last login with the old key came to, for the message of a wait that ran out. */
let lastOldKeyLogin = 'no attempt';
const errorChain = (e: unknown): string =>
  e instanceof Error
    ? `${e.name}: ${e.message}${e.cause === undefined ? '' : ` ← ${errorChain(e.cause)}`}`
    : String(e);

/**
 * A login with the old key is refused by the server's authorization, not merely failed: a login that timed out while
 * the server was busy reloading says nothing about the key.
 */
const oldKeyRefused = (): Promise<boolean> =>
  // A login the reloading server leaves unanswered would otherwise wait out nats.js's 20 s: it is tried again instead.
  connectAs(agentA, oldIdentityFile(), { timeout: 5000 }).then(
    () => ((lastOldKeyLogin = 'logged in'), false),
    (e: unknown) => {
      lastOldKeyLogin = errorChain(e);
      return e instanceof BusConfigError && e.cause instanceof AuthorizationError;
    },
  );

/**
 * Wait until the reloaded server refuses the old key. Once in CI (two cores, ten integration files at a time), 10 s went
 * by without the refusal, and the message did not say what the logins came to: it does now, and the wait is as long
 * as JetStream's below.
 */
const untilOldKeyRefused = (): Promise<void> =>
  until(oldKeyRefused, () => `the old key refused at login (the last login: ${lastOldKeyLogin})`, 30_000, 50);

/** `nats-server --signal reload` of the test server: its copy of the secrets' configuration replaced, then SIGHUP. */
async function reloadServer(): Promise<void> {
  // startNatsServer includes a copy of DIR/nats-server.conf named secrets.conf, beside the store.
  await copyFile(join(secrets.dir, 'nats-server.conf'), join(dirname(server.storeDir), 'secrets.conf'));
  process.kill(server.pid, 'SIGHUP');
}

let lastSeqBefore = 0;
let coordinator: NatsConnection;
let ops: NatsConnection;
let agentWithA: NatsConnection;
const agentWithAStatus: string[] = [];

before(async () => {
  secrets = await createTestSecrets(['node-a', 'node-b'], auth);
  server = await startNatsServer({ secrets: secrets.dir });
  oldSeedDir = await mkdtemp(join(tmpdir(), 'haul-old-seed-'));
  await writeFile(oldIdentityFile(), await readFile(identityFileIn(secrets.dir, agentA).file), {
    mode: 0o600,
  });
  before_ = loadTestIdentities(secrets.dir);
  coordinator = await connectAs('coordinator');
  ops = await connectAs('ops');
  // Its one reconnection attempt after the reload gives up within 5 s: a CI run saw the server close
  // that attempt's socket after its INFO without an -ERR the client read (status events: error, disconnect,
  // reconnecting, update, disconnect), and nats.js then waits for a PONG until its connection timeout, 20 s by
  // default, before it closes a connection that may not reconnect.
  agentWithA = await connectAs(agentA, undefined, { timeout: 5000 });
  // What happens to this connection, for the message of a check that it closed (a run once waited 10 s in vain).
  void (async () => {
    for await (const st of agentWithA.status()) agentWithAStatus.push(st.type);
  })();
  await ensureTopology(coordinator, {}, log);
  const byCoordinator = createEventLog(coordinator, validators, before_.trust('coordinator'));
  await byCoordinator.append(stepIntended(command(1)));
  const a = await createEventLog(agentWithA, validators, before_.trust(agentA)).append(failed(1, 'by-A'));
  lastSeqBefore = a.seq;

  let out = '';
  let err = '';
  const code = await main(['rotate-key', '--dir', secrets.dir, '--identity', agentA], {
    out: createOutput({ write: (s: string) => (out += s) }, {}),
    err: (s) => (err += s),
    env: { HAUL_NATS_URL: server.url, ...secretsEnv(secrets.dir, 'ops') },
  });
  assert.equal(code, exitCode('completed'), err);
  assert.match(out, new RegExp(`believed for events up to sequence ${lastSeqBefore}`));
  after_ = loadTestIdentities(secrets.dir);
  await reloadServer();
  // The reload has taken effect once the old key is refused. In operator mode it also closed every client
  // connection (nats-server 2.9 does so at every reload in operator mode; services reconnect), so the readers below
  // connect again from here on.
  await untilOldKeyRefused();
  coordinator = await connectAs('coordinator');
  ops = await connectAs('ops');
  // The logins are checked before the reload is through with JetStream: on a busy machine its API kept quiet past
  // a request's 5 s timeout once. Every test below asks it, so the reload is over when it answers.
  await until(
    () =>
      jetstreamManager(coordinator)
        .then((m) => m.getAccountInfo())
        .then(
          () => true,
          () => false,
        ),
    'JetStream answers after the reload',
    30_000,
    50,
  );
});

after(async () => {
  for (const nc of conns) await nc.close().catch(() => {});
  await server?.stop();
  await secrets?.remove();
  if (oldSeedDir) await rm(oldSeedDir, { recursive: true, force: true });
});

describe('rotating one identity on a running cluster', () => {
  it('given no --events-up-to, then the old key is retired at the event stream’s last sequence', async () => {
    const registry = parseRegistry(JSON.parse(await readFile(join(secrets.dir, 'identities.json'), 'utf8')));
    const agent = registry.identities.find((i) => i.name === agentA)!;
    const old = before_.trust(agentA).identity!.publicKey;
    const info = await (await jetstreamManager(coordinator)).streams.info(streams.events);
    assert.equal(info.state.last_seq, lastSeqBefore);
    assert.deepEqual(agent.retiredKeys, [{ publicKey: old, eventsUpTo: lastSeqBefore }]);
    assert.notEqual(agent.publicKey, old);
  });

  it('given the reloaded server, then the old key no longer logs in, and its connection is closed; the new one logs in', async () => {
    await untilOldKeyRefused();
    await until(
      () => agentWithA.isClosed(),
      () =>
        `the connection with the old key closed (its status events: ${agentWithAStatus.join(', ') || 'none'})`,
      30_000,
      50,
    );
    await connectAs(agentA);
  });

  it('given a reader with the new registry, then it believes A’s events up to N and B’s after, and refuses A’s later one', async () => {
    const agentWithB = await connectAs(agentA);
    await createEventLog(coordinator, validators, after_.trust('coordinator')).append(
      stepIntended(command(2)),
    );
    await createEventLog(agentWithB, validators, after_.trust(agentA)).append(failed(2, 'by-B'));
    // Whoever holds A's seed can no longer log in as agent@node-a, but a signature is not its login: another
    // credential that may append (here agent@node-b's) stores an event signed with A, after N.
    const forger = await connectAs('agent@node-b');
    const late = failed(2, 'by-A-after');
    const stored = await publishAs(
      forger,
      before_.trust(agentA),
      subjects.events(mid),
      new TextEncoder().encode(JSON.stringify(late)),
    );
    assert.ok(stored.seq > lastSeqBefore);

    const ids = [
      `${command(1).commandId}:intent`,
      `${mid}:by-A`,
      `${command(2).commandId}:intent`,
      `${mid}:by-B`,
    ];
    assert.deepEqual(await believed(ops, after_.trust('ops')), { ids, refused: 1 });
    const followed: string[] = [];
    const follower = createEventLog(ops, validators, after_.trust('ops'));
    for await (const s of follower.follow({ migrationId: mid, toEnd: true })) followed.push(s.event.eventId);
    assert.deepEqual(followed, ids, 'a follower (each message judged alone) believes the same');
    // A reader still on the old registry knows A only as current: it refuses B's event until it gets the new file.
    assert.deepEqual(await believed(ops, before_.trust('ops')), {
      ids: [...ids.slice(0, 3), `${mid}:by-A-after`],
      refused: 1,
    });
  });

  it('given a command signed with the retired key, then the agent refuses it as unauthenticated, naming the retired key', async () => {
    const warnings: string[] = [];
    const capture = { warn: (_o: unknown, m: string) => void warnings.push(m) } as unknown as Logger;
    const trust = after_.trust(agentA, capture);
    const nc = await connectAs(agentA);
    const queue = createCommandQueue({
      nc,
      validators,
      eventLog: createEventLog(nc, validators, trust),
      trust,
      log,
      actor: { service: 'node-agent', node: 'node-a' },
      executor: 'agent',
    });
    const ac = new AbortController();
    const ran: string[] = [];
    await queue.consume((d) => {
      ran.push(d.command.commandId);
      return Promise.resolve();
    }, ac.signal);
    // Published with the coordinator's login (only it may send commands), signed with A.
    await publishAs(
      coordinator,
      before_.trust(agentA),
      subjects.commands('node-a', 'agent'),
      new TextEncoder().encode(JSON.stringify(command(2))),
    );
    await until(() => trust.rejections === 1, 'the command refused', 10_000, 50);
    ac.abort();
    assert.deepEqual(ran, []);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      new RegExp(
        `rejected command: signed by agent@node-a's retired key, believed only up to event sequence ${lastSeqBefore}, and for no command or request`,
      ),
    );
  });

  it('given --events-up-to beyond the event stream’s last sequence while NATS answers, then it is a usage error and nothing changes; the last sequence itself is taken', async () => {
    const last = (await (await jetstreamManager(coordinator)).streams.info(streams.events)).state.last_seq;
    const registryBefore = await readFile(join(secrets.dir, 'identities.json'), 'utf8');
    const rotate = async (n: number) => {
      let out = '';
      let err = '';
      const code = await main(
        ['rotate-key', '--dir', secrets.dir, '--identity', 'agent@node-b', '--events-up-to', String(n)],
        {
          out: createOutput({ write: (s: string) => (out += s) }, {}),
          err: (s) => (err += `${s}\n`),
          env: { HAUL_NATS_URL: server.url, ...secretsEnv(secrets.dir, 'ops') },
        },
      );
      return { code, out, err };
    };
    const typo = await rotate(last * 10 + 1);
    assert.equal(typo.code, exitCode('usage'), typo.err);
    assert.match(
      typo.err,
      new RegExp(`--events-up-to: ${last * 10 + 1} is beyond the event stream's last sequence, ${last}:`),
    );
    assert.equal(await readFile(join(secrets.dir, 'identities.json'), 'utf8'), registryBefore);

    const exact = await rotate(last);
    assert.equal(exact.code, exitCode('completed'), exact.err);
    assert.doesNotMatch(exact.err, /warning/);
    const registry = parseRegistry(JSON.parse(await readFile(join(secrets.dir, 'identities.json'), 'utf8')));
    assert.equal(
      registry.identities.find((i) => i.name === 'agent@node-b')!.retiredKeys?.[0]?.eventsUpTo,
      last,
    );
  });
});

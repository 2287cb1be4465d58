import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  buckets,
  connectBus,
  createEventLog,
  createLogger,
  decodeJson,
  ensureTopology,
  openBucket,
  sendCommand,
  subjects,
} from '@haul/bus';
import { createValidators, type StreamArgs, type StreamOffer } from '@haul/schemas';
import { awaitEvent, outcomeOf, startNatsServer, stepIntended, tempIdentities } from '@haul/test';
import type { StreamerConfig } from '../src/app.ts';
import type { TlsMaterial } from '../src/tls.ts';
import { makeTestPki, type TestPki } from './certs.ts';
import { closed, openFds, streamerOf, tcpClient, tlsClient, until } from './support.ts';

const validators = createValidators();
/** Signing on: the streamers sign as themselves; commands come signed from "the coordinator" with an intent. */
const ids = tempIdentities();
const log = createLogger('streamer-security-test', undefined, { HAUL_LOG_LEVEL: 'silent' });

function makeTree(dir: string, mb: number): void {
  mkdirSync(join(dir, '1'), { recursive: true });
  writeFileSync(join(dir, '1', 'pages-1.img'), randomBytes(mb * 1024 * 1024 + 5));
  writeFileSync(join(dir, 'inventory.img'), randomBytes(300));
}

function digest(dir: string): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    for (const f of readdirSync(join(dir, rel), { withFileTypes: true }).sort((x, y) =>
      x.name < y.name ? -1 : 1,
    )) {
      const p = rel ? `${rel}/${f.name}` : f.name;
      if (f.isDirectory()) walk(p);
      else h.update(p).update(readFileSync(join(dir, p)));
    }
  };
  walk('');
  return h.digest('hex');
}

/** Two streamers, node-a and node-b, in this process, over a fresh nats-server. */
async function twoNodes(extra: (node: string) => Partial<StreamerConfig>) {
  const server = await startNatsServer();
  const nc = await connectBus({ servers: server.url, name: 'streamer-security-test' });
  await ensureTopology(nc);
  const dir = mkdtempSync(join(tmpdir(), 'haul-stream-sec-'));
  const make = (node: string) =>
    streamerOf({ nc, validators, log, trust: ids.trust(`streamer@${node}`) }, node, dir, {
      maxRetries: 20,
      progressEveryMs: 1000,
      ...extra(node),
    });
  const a = make('node-a');
  const b = make('node-b');
  await a.start();
  await b.start();
  const intents = createEventLog(nc, validators, ids.trust('coordinator'));
  return {
    server,
    nc,
    dir,
    a,
    b,
    /** node-a's transfer, as the coordinator intends it before sending it: only an intended offer is received. */
    async send(migrationId: string, commandId: string, args: StreamArgs) {
      await intents.append(
        stepIntended({
          commandId,
          migrationId,
          node: 'node-a',
          executor: 'streamer',
          attempt: 1,
          step: 'streamImages',
          args,
          timeoutMs: 90_000,
        }),
      );
      return a.transfer(migrationId, commandId, args, log);
    },
    async stop() {
      await a.stop();
      await b.stop();
      await nc.drain();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whoever reads the offers on NATS: it races the real receiver to the sender with the offer's token. */
function eavesdrop(
  nc: NatsConnection,
  dial: (o: StreamOffer) => Promise<Socket>,
  wants: (o: StreamOffer) => boolean,
) {
  const socks: Socket[] = [];
  const sub = nc.subscribe(subjects.streamOffer('node-b'), {
    callback: (_err, msg) => {
      const o = decodeJson(msg.data) as StreamOffer;
      if (!wants(o)) return;
      void dial(o).then(
        (s) => {
          socks.push(s);
          s.on('error', () => {});
          // Holds the connection: reads nothing, answers nothing.
          s.pause();
          s.write(`${o.connect.token}\n`);
        },
        () => {},
      );
    },
  });
  return { socks, stop: () => sub.unsubscribe() };
}

describe('plaintext (HAUL_INSECURE=1): a stolen token can only delay a transfer', () => {
  let w: Awaited<ReturnType<typeof twoNodes>>;
  before(async () => {
    // Held connections are closed after 2 s of silence: short enough for the test, long enough that the real
    // transfers' connections are not taken for idle ones while a busy machine starves this process.
    w = await twoNodes(() => ({ idleMs: 2_000 }));
  });
  after(() => w?.stop());

  it(
    'transfers held by a subscriber with their tokens do not starve the slots: all five complete',
    { timeout: 90_000 },
    async () => {
      const stolen = new Set<string>();
      // It takes the first attempt of each "held" transfer; a sender runs four transfers at once.
      const spy = eavesdrop(
        w.nc,
        (o) => tcpClient(o.connect.port),
        (o) =>
          o.transferId.includes('held') && !stolen.has(o.transferId) && Boolean(stolen.add(o.transferId)),
      );
      const events = createEventLog(w.nc, validators, ids.trust('coordinator'));
      const names = ['held1', 'held2', 'held3', 'held4', 'after'];
      const cmds = names.map((name) => {
        const src = join(w.dir, 'node-a', 'img', name);
        makeTree(src, 3);
        return {
          commandId: `mig-sec001:streamImages:${name}:1`,
          migrationId: 'mig-sec001',
          node: 'node-a',
          executor: 'streamer' as const,
          attempt: 1,
          step: 'streamImages' as const,
          timeoutMs: 60_000,
          args: {
            toNode: 'node-b',
            sourceDir: src,
            targetDir: join(w.dir, 'node-b', 'img', name),
            priority: 'iteration' as const,
          },
        };
      });
      for (const c of cmds) {
        await events.append(stepIntended(c));
        await sendCommand(w.nc, validators, ids.trust('coordinator'), c);
      }
      for (const c of cmds) {
        const done = await awaitEvent(events, 'mig-sec001', outcomeOf(c.commandId), 60_000);
        assert.equal(done.type, 'StepSucceeded', c.commandId);
        assert.equal(digest(c.args.targetDir), digest(c.args.sourceDir));
      }
      spy.stop();
      assert.ok(spy.socks.length >= 1, 'the subscriber did take transfers with their tokens');
      await Promise.all(spy.socks.map((s) => (s.resume(), closed(s))));
      await until(() => w.a.dataSockets() === 0 && w.b.receiving() === 0, 'every data connection closed');
    },
  );

  it(
    'keeps a bandwidth-limited transfer alive past the idle timeout: the sender says it waits',
    { timeout: 90_000 },
    async () => {
      const src = join(w.dir, 'node-a', 'img', 'slow');
      makeTree(src, 2);
      const target = join(w.dir, 'node-b', 'img', 'slow');
      // 1 MB/s: each 1 MiB chunk waits about a second for its turn, twice the idle timeout of both ends.
      const r = await w.send('mig-sec004', 'mig-sec004:streamImages:0:1', {
        toNode: 'node-b',
        sourceDir: src,
        targetDir: target,
        priority: 'iteration',
        bandwidthLimitMBps: 1,
      });
      assert.equal(r.retries, 0, 'no connection was dropped as idle');
      assert.equal(digest(target), digest(src));
    },
  );
});

describe('mutual TLS: a token is useless without the target node certificate', () => {
  let w: Awaited<ReturnType<typeof twoNodes>>;
  let pki: TestPki;
  let tls: (node: string) => TlsMaterial;
  before(async () => {
    pki = makeTestPki(['streamer@node-a', 'streamer@node-b', 'streamer@node-c']);
    tls = (node) => pki.material(`streamer@${node}`);
    w = await twoNodes((node) => ({ tls: tls(node) }));
  });
  after(async () => {
    await w?.stop();
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it(
    'moves the bytes only to the target, while another node and silent clients try the data port',
    { timeout: 90_000 },
    async () => {
      const spy = eavesdrop(
        w.nc,
        (o) => tlsClient(o.connect.port, tls('node-c')),
        () => true,
      );
      const fds = openFds();
      const src = join(w.dir, 'node-a', 'img', 'tls');
      makeTree(src, 6);
      const target = join(w.dir, 'node-b', 'img', 'tls');
      const moving = w.send('mig-sec002', 'mig-sec002:streamImages:0:1', {
        toNode: 'node-b',
        sourceDir: src,
        targetDir: target,
        priority: 'final',
      });
      const r = await moving;
      assert.equal(r.retries, 0, 'the real receiver was never refused');
      assert.equal(digest(target), digest(src));
      spy.stop();
      assert.ok(spy.socks.length >= 1, 'another node tried the token');
      await Promise.all(spy.socks.map((s) => (s.resume(), closed(s))));
      await until(() => w.a.dataSockets() === 0 && w.b.receiving() === 0, 'every data connection closed');
      assert.equal(openFds(), fds);
    },
  );

  it(
    'closes silent clients on the data port and lets a transfer through meanwhile',
    { timeout: 90_000 },
    async () => {
      const port = await dataPortOf(w.nc, 'node-a');
      const fds = openFds();
      // Twenty clients that connect and send nothing, as in the report.
      const silent = await Promise.all(Array.from({ length: 20 }, () => tcpClient(port)));
      const src = join(w.dir, 'node-a', 'img', 'tls2');
      makeTree(src, 2);
      const target = join(w.dir, 'node-b', 'img', 'tls2');
      await w.send('mig-sec003', 'mig-sec003:streamImages:0:1', {
        toNode: 'node-b',
        sourceDir: src,
        targetDir: target,
        priority: 'final',
      });
      assert.equal(digest(target), digest(src));
      await Promise.all(silent.map(closed));
      await until(() => w.a.dataSockets() === 0, 'the sender let every socket go');
      assert.equal(openFds(), fds);
    },
  );
});

async function dataPortOf(nc: NatsConnection, node: string): Promise<number> {
  const e = await (await openBucket(nc, buckets.streamers)).get(node);
  return (decodeJson(e!.value) as { dataPort: number }).dataPort;
}

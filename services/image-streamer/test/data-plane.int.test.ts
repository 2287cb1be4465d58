import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it, mock } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { createLogger } from '@haul/bus';
import { startService } from '@haul/test';
import type { StreamerRegistration, StreamOffer } from '@haul/schemas';
import {
  ConnectionLost,
  createDataServer,
  parsePortRange,
  PortRangeExhaustedError,
} from '../src/data-server.ts';
import { createReceiver, type IntentCheck, type PeerRegistry, type Receiver } from '../src/receiver.ts';

/** The data plane alone: every offer is taken as intended (the log's check: streamer.int, receiver-intent.unit). */
const allIntended: IntentCheck = () => Promise.resolve(undefined);
import { sendFiles, type SendOptions } from '../src/sender.ts';
import { keepWriteBackFailure, PartFile } from '../src/part-file.ts';
import { CHUNK, chunkDigest, encodeHeader } from '../src/wire.ts';
import { makeTestPki, type TestPki } from './certs.ts';
import { closed, openFds, tcpClient, tlsClient, until } from './support.ts';

const log = createLogger('data-plane-test', undefined, { HAUL_LOG_LEVEL: 'silent' });
const work = mkdtempSync(join(tmpdir(), 'haul-data-plane-'));
let pki: TestPki;
before(() => {
  pki = makeTestPki(['streamer@node-a', 'streamer@node-b', 'streamer@node-c'], ['streamer@node-b-forged'], {
    'impostor-a': 'streamer@node-a',
  });
});
after(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
});

const listen = (s: Server) =>
  new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)));

/** Listen on exactly this port, or undefined when it is taken. */
const holdPort = (port: number) =>
  new Promise<Server | undefined>((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
const release = (s: Server) => new Promise<void>((r) => s.close(() => r()));

/** Three consecutive ports below the ephemeral range: the first two held by other listeners, the third free. */
async function twoHeldOneFree(): Promise<{ base: number; held: Server[] }> {
  for (;;) {
    const base = 20000 + Math.floor(Math.random() * 12000);
    const held = (await Promise.all([holdPort(base), holdPort(base + 1), holdPort(base + 2)])).filter(
      (x): x is Server => x !== undefined,
    );
    if (held.length === 3) {
      await release(held.pop()!);
      return { base, held };
    }
    await Promise.all(held.map(release));
  }
}

describe('the data listener’s port range (data.ports)', () => {
  it('takes the first free port of the range, with TLS too, and says so when every port is taken', async () => {
    const { base, held } = await twoHeldOneFree();
    try {
      const server = await createDataServer({
        host: '127.0.0.1',
        ports: { from: base, to: base + 2 },
        tls: pki.material('streamer@node-a'),
      });
      assert.equal(server.port, base + 2);
      await assert.rejects(
        createDataServer({ host: '127.0.0.1', ports: { from: base, to: base + 2 } }),
        (err: unknown) =>
          err instanceof PortRangeExhaustedError &&
          err.code === 'HAUL_STREAM_PORTS_EXHAUSTED' &&
          err.message.includes(`${base}-${base + 2}`),
      );
      await server.close();
    } finally {
      await Promise.all(held.map(release));
    }
  });

  it('reads FROM-TO or one port, and refuses ports out of 1-65535 or backwards', () => {
    assert.deepEqual(parsePortRange('7400-7409'), { from: 7400, to: 7409 });
    assert.deepEqual(parsePortRange('7400'), { from: 7400, to: 7400 });
    assert.throws(() => parsePortRange('0-10'), RangeError);
    assert.throws(() => parsePortRange('65535-65536'), RangeError);
    assert.throws(() => parsePortRange('7409-7400'), RangeError);
  });
});

describe('the streamer’s start: its data connections’ TLS', () => {
  for (const [what, key] of [
    ['a key file that holds no key', () => 'not a key\n'],
    ["another identity's key", () => pki.env('streamer@node-b').HAUL_TLS_KEY_FILE!],
  ] as const)
    it(`exits 2 on ${what}, naming data.tls, before it connects to anything`, async () => {
      // Given node-a's certificate and CA, with a key OpenSSL will not use with them
      let keyFile = key();
      if (!keyFile.startsWith('/')) {
        writeFileSync(join(work, 'bad-key.pem'), keyFile);
        keyFile = join(work, 'bad-key.pem');
      }
      // When the streamer starts (the bus address is one nothing listens on: it must not get that far)
      const streamer = startService('streamer-bad-tls', 'services/image-streamer/src/main.ts', {
        PATH: process.env['PATH'],
        HAUL_NODE: 'node-a',
        HAUL_NATS_URL: 'nats://127.0.0.1:1',
        HAUL_INSECURE: '1',
        HAUL_STREAM_ROOTS: work,
        ...pki.env('streamer@node-a'),
        HAUL_TLS_KEY_FILE: keyFile,
      });
      // Then it ends with the settings' status and says which setting and why (OpenSSL's reason, in its words)
      assert.equal(await streamer.drained, 2);
      assert.match(streamer.lines.join('\n'), /data\.tls: the certificate, key or CA cannot be used: \S/);
    });
});

describe('the sending side: its data listener', () => {
  it(
    'closes clients that send nothing, garbage, a wrong or a reused token, and frees their descriptors',
    { timeout: 30_000 },
    async () => {
      const server = await createDataServer({ host: '127.0.0.1', handshakeMs: 300 });
      const fds = openFds();
      const listener = server.expect('node-b');
      const silent = await Promise.all(Array.from({ length: 5 }, () => tcpClient(server.port)));
      const garbage = await tcpClient(server.port);
      garbage.write(randomBytes(4096));
      const wrong = await tcpClient(server.port);
      wrong.write(`${'ff'.repeat(16)}\n`);
      const good = await tcpClient(server.port);
      good.write(`${listener.token}\n`);
      const accepted = await listener.accept(5_000);
      const reused = await tcpClient(server.port);
      reused.write(`${listener.token}\n`);
      await Promise.all([...silent, garbage, wrong, reused].map(closed));
      assert.equal(good.closed, false, 'the connection with the token stays');
      accepted.destroy();
      good.destroy();
      await until(() => server.openSockets() === 0, 'every socket closed on the server');
      assert.equal(openFds(), fds, 'no descriptor leaked');
      await server.close();
    },
  );

  it(
    'closes the connection that came with the token when the transfer gave up before taking it (its offer timed out)',
    { timeout: 30_000 },
    async () => {
      // Given a receiver that connected with the token
      const server = await createDataServer({ host: '127.0.0.1', handshakeMs: 600_000 });
      const listener = server.expect('node-b');
      const good = await tcpClient(server.port);
      good.write(`${listener.token}\n`);
      await until(() => server.tokensWaiting() === 0, 'the token presented');
      // When the sender gives up the transfer before it takes the connection (the offer's request timed out)
      listener.close();
      // Then the connection is closed (it stayed open, paused, until the streamer stopped)
      await closed(good);
      await until(() => server.openSockets() === 0, 'every socket closed on the server');
      await server.close();
    },
  );

  it(
    'lets a new connection in when a peer already holds its quota of silent ones (the oldest goes)',
    { timeout: 30_000 },
    async () => {
      const server = await createDataServer({ host: '127.0.0.1', handshakeMs: 600_000, perPeer: 3 });
      const held = await Promise.all(Array.from({ length: 3 }, () => tcpClient(server.port)));
      const listener = server.expect('node-b');
      const good = await tcpClient(server.port);
      good.write(`${listener.token}\n`);
      const sock = await listener.accept(5_000);
      await closed(held[0]!);
      assert.equal(held[2]!.closed, false);
      sock.destroy();
      for (const h of held) h.destroy();
      await server.close();
    },
  );

  it('with TLS, takes the token only from the node it was made for', { timeout: 30_000 }, async () => {
    const server = await createDataServer({ host: '127.0.0.1', tls: pki.material('streamer@node-a'), log });
    const listener = server.expect('node-b');
    const ca = pki.material('streamer@node-a').ca;
    // No certificate, a certificate of another node of the cluster, one from a CA the cluster does not trust.
    const anonymous = await tlsClient(server.port, { ca });
    anonymous.on('error', () => {});
    anonymous.write(`${listener.token}\n`);
    const thief = await tlsClient(server.port, pki.material('streamer@node-c'));
    thief.write(`${listener.token}\n`);
    const forger = tlsClient(server.port, { ...pki.material('streamer@node-b-forged'), ca });
    await Promise.all([closed(anonymous), closed(thief), forger.then(closed, () => {})]);
    const plain = await tcpClient(server.port);
    plain.write(`${listener.token}\n`);
    await closed(plain);
    const good = await tlsClient(server.port, pki.material('streamer@node-b'));
    good.write(`${listener.token}\n`);
    const sock = await listener.accept(5_000);
    sock.destroy();
    await closed(good);
    await server.close();
  });

  it(
    'gives up a transfer whose receiver stops reading and answering, closing its files and socket',
    { timeout: 30_000 },
    async () => {
      const src = join(work, 'idle-src');
      mkdirSync(src, { recursive: true });
      writeFileSync(join(src, 'pages.img'), randomBytes(64 * 1024 * 1024));
      const server = await createDataServer({ host: '127.0.0.1' });
      const listener = server.expect('node-b');
      const receiver = await tcpClient(server.port);
      receiver.write(`${listener.token}\n`);
      const sock = await listener.accept(5_000);
      receiver.pause();
      const fds = openFds();
      const sending = sendFiles({
        sourceDir: src,
        manifest: [{ path: 'pages.img', kind: 'file', size: 64 * 1024 * 1024 }],
        sock,
        verified: {},
        throttle: () => Promise.resolve(),
        onBytes: () => {},
        idleMs: 300,
      });
      await assert.rejects(sending, ConnectionLost);
      await until(() => server.openSockets() === 0, 'the sending side closed its socket');
      assert.equal(openFds(), fds - 1, 'the source file and the socket are closed');
      receiver.destroy();
      await server.close();
    },
  );
});

describe('the receiving side', () => {
  const root = join(work, 'recv');
  mkdirSync(root, { recursive: true });
  let reg: Record<string, StreamerRegistration> = {};
  const registry: PeerRegistry = (node) => Promise.resolve(reg[node]);
  const register = (node: string, dataPort: number, tls = false) =>
    (reg[node] = {
      node,
      service: 'image-streamer',
      time: new Date().toISOString(),
      dataHost: '127.0.0.1',
      dataPort,
      tls,
    });
  const offer = (fromNode: string, port: number, target: string, size = 4): StreamOffer => ({
    transferId: `t-${target}`,
    migrationId: 'mig-data01',
    fromNode,
    targetDir: join(root, target),
    connect: { host: '127.0.0.1', port, token: 'ab'.repeat(16) },
    manifest: [{ path: 'pages.img', kind: 'file', size }],
  });
  /** A fake sender that records the connections it gets (TCP) and does what `onSock` says with them. */
  async function fakeSender(onSock: (s: Socket) => void, tls?: string) {
    const seen: Socket[] = [];
    const handler = (s: Socket) => {
      s.on('error', () => {});
      // Reads (and drops) what comes, so that it sees the receiver close.
      s.resume();
      onSock(s);
    };
    const server = tls
      ? createTlsServer({ ...pki.material(tls), requestCert: true }, handler)
      : createServer(handler);
    server.on('connection', (raw: Socket) => {
      seen.push(raw);
      raw.on('error', () => {});
    });
    const port = await listen(server);
    return { port, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
  }

  it(
    'refuses an offer from an unregistered node or naming another address than the node registered',
    { timeout: 30_000 },
    async () => {
      reg = {};
      const trap = await fakeSender(() => {});
      const receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended });
      const field = async (o: StreamOffer) => {
        const r = await receiver.accept(o);
        assert.equal(r.ok, false);
        return 'error' in r && [r.error.code, r.error.field];
      };
      assert.deepEqual(await field(offer('node-x', trap.port, 'u1')), ['HAUL_UNREGISTERED_PEER', 'fromNode']);
      register('node-a', trap.port + 1);
      assert.deepEqual(await field(offer('node-a', trap.port, 'u2')), [
        'HAUL_UNREGISTERED_PEER',
        'connect.port',
      ]);
      const other = { ...offer('node-a', trap.port + 1, 'u3') };
      other.connect = { ...other.connect, host: '127.0.0.2' };
      assert.deepEqual(await field(other), ['HAUL_UNREGISTERED_PEER', 'connect.host']);
      register('node-a', trap.port, true);
      assert.deepEqual(await field(offer('node-a', trap.port, 'u4')), ['HAUL_UNREGISTERED_PEER', 'fromNode']);
      await trap.close();
      assert.equal(trap.seen.length, 0, 'no connection was opened');
      assert.ok(!existsSync(join(root, 'u1')) && !existsSync(join(root, 'u2')));
    },
  );

  it(
    'checks an offer again once it made the target folder: given up meanwhile, it is refused and the folders it made removed',
    { timeout: 30_000 },
    async () => {
      // Given a transfer whose offer the log intends, and whose command the coordinator gives up right after that
      // check (its removal of the target folder may have run before the folder is made)
      const trap = await fakeSender(() => {});
      register('node-a', trap.port);
      const givenUp = {
        ok: false,
        error: { code: 'HAUL_OFFER_NOT_INTENDED', field: 'transferId', message: 'the transfer has ended' },
      } as const;
      let checks = 0;
      const receiver = createReceiver({
        allowedRoots: [root],
        log,
        registry,
        intended: () => Promise.resolve(checks++ === 0 ? undefined : givenUp),
      });
      const withDirs = (target: string): StreamOffer => {
        const o = offer('node-a', trap.port, target);
        return { ...o, manifest: [{ path: 'dump/1', kind: 'dir' }, ...o.manifest] };
      };
      // When its offer comes into a folder not there yet: refused on the second check, the target folder and the
      // folders made in it gone (one made above it is left: another offer may be making its own folder there)
      assert.deepEqual(await receiver.accept(withDirs('late/one')), givenUp);
      assert.equal(checks, 2);
      assert.ok(!existsSync(join(root, 'late', 'one')), 'the folders the offer made are gone');
      assert.deepEqual(readdirSync(join(root, 'late')), []);
      // When it comes into a folder there already (an earlier pass's): one check, its removal takes the folder
      mkdirSync(join(root, 'kept'));
      checks = 0;
      assert.equal((await receiver.accept(withDirs('kept'))).ok, true);
      assert.equal(checks, 1);
      // (connected for the accepted offer only)
      await connectionsEnd(trap, receiver, 1);
      await trap.close();
    },
  );

  it(
    'checks an offer again as it was received: under an allowed root that is a link, by the path the log names',
    { timeout: 30_000 },
    async () => {
      // Given an allowed root reached through a link (/vz → /data/vz, say), and a log that intends the transfer into
      // the folder as named under the link
      const real = join(work, 'linked-real');
      const linked = join(work, 'linked');
      mkdirSync(real, { recursive: true });
      symlinkSync(real, linked);
      const trap = await fakeSender(() => {});
      register('node-a', trap.port);
      const named = join(linked, 'fresh');
      const seen: string[] = [];
      const receiver = createReceiver({
        allowedRoots: [linked],
        log,
        registry,
        intended: (o) => {
          seen.push(o.targetDir);
          return Promise.resolve(
            o.targetDir === named
              ? undefined
              : ({ ok: false, error: { code: 'HAUL_OFFER_NOT_INTENDED', message: o.targetDir } } as const),
          );
        },
      });
      // When its first offer comes, into a folder not there yet: both checks see the folder as named, and it is taken
      // (before, the second check saw the real path, refused, and removed the folder, offer after offer)
      const reply = await receiver.accept({ ...offer('node-a', trap.port, 'x'), targetDir: named });
      assert.equal(reply.ok, true, JSON.stringify(reply));
      assert.deepEqual(seen, [named, named]);
      assert.ok(existsSync(join(real, 'fresh')));
      await connectionsEnd(trap, receiver, 1);
      await trap.close();
    },
  );

  it(
    'closes a data connection on which the sender sends nothing, or garbage, and frees it',
    { timeout: 30_000 },
    async () => {
      const silent = await fakeSender(() => {});
      const garbage = await fakeSender((s) => {
        s.write(randomBytes(64));
        s.write(encodeHeader({ t: 'end' }));
      });
      const receiver = createReceiver({
        allowedRoots: [root],
        log,
        registry,
        intended: allIntended,
        idleMs: 300,
      });
      const fds = openFds();
      register('node-a', silent.port);
      register('node-c', garbage.port);
      assert.equal((await receiver.accept(offer('node-a', silent.port, 'idle'))).ok, true);
      assert.equal((await receiver.accept(offer('node-c', garbage.port, 'garbage'))).ok, true);
      await until(() => silent.seen.length === 1 && garbage.seen.length === 1, 'both connected');
      await Promise.all([...silent.seen, ...garbage.seen].map(closed));
      await until(() => receiver.active() === 0, 'the receiver let both go');
      assert.equal(openFds(), fds, 'no descriptor leaked');
      assert.deepEqual(readdirSync(join(root, 'garbage')), [], 'nothing written');
      await silent.close();
      await garbage.close();
    },
  );

  it(
    'fails a transfer whose chunk header has a negative offset, and writes nothing (it was written at the file position before)',
    { timeout: 30_000 },
    async () => {
      // Given a sender that sends the one chunk of a 4-byte file at offset -CHUNK (-CHUNK % CHUNK is -0), then the
      // file's real chunk and the end
      let answers = '';
      const forger = await fakeSender((s) => {
        s.on('data', (d: Buffer) => (answers += d.toString()));
        const bad = Buffer.alloc(CHUNK, 7);
        const good = Buffer.from('abcd');
        for (const [offset, payload] of [
          [-CHUNK, bad],
          [0, good],
        ] as const)
          s.write(
            Buffer.concat([
              encodeHeader({
                t: 'chunk',
                id: offset === 0 ? 1 : 0,
                path: 'pages.img',
                offset,
                len: payload.length,
                crc32: chunkDigest(payload),
              }),
              payload,
            ]),
          );
        s.write(encodeHeader({ t: 'end' }));
      });
      const receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended });
      register('node-d', forger.port);

      // When the receiver takes the transfer
      const r = await receiver.accept(offer('node-d', forger.port, 'negative'));
      assert.equal(r.ok, true);
      await until(() => receiver.active() === 0, 'the receiver let the transfer go');

      // Then it answered the first chunk as out of the manifest, and no file was finished
      assert.match(answers, /^error chunk outside the manifest: pages\.img@-1048576/m);
      assert.ok(!/^ok 0$/m.test(answers), answers);
      assert.equal(existsSync(join(root, 'negative', 'pages.img')), false);
      await forger.close();
    },
  );

  /**
   * A pass into `folder` below the root whose sender sends only its end (nothing is left to send), taken by a fresh
   * receiver (or `receiver`); what the receiver answered, once it let the pass go.
   */
  /**
   * A pass into `folder` from `node` whose sender sends its end alone, offered and accepted: the reply, what the
   * receiver has answered so far on the connection, and the sender to close.
   */
  async function passOfEndAlone(
    node: string,
    folder: string,
    over: Partial<StreamOffer>,
    receiver: ReturnType<typeof createReceiver>,
    /** What the sender sends before its end (chunk frames: `frame`). */
    before: Buffer[] = [],
  ) {
    let answers = '';
    const sender = await fakeSender((s) => {
      s.on('data', (d: Buffer) => (answers += d.toString()));
      for (const b of before) s.write(b);
      s.write(encodeHeader({ t: 'end' }));
    });
    try {
      register(node, sender.port);
      const reply = await receiver.accept({ ...offer(node, sender.port, folder), ...over });
      assert.equal(reply.ok, true);
      return { reply, answers: () => answers, close: () => sender.close() };
    } catch (err) {
      await sender.close();
      throw err;
    }
  }

  /**
   * Hold every call of fs's `kinds` (a disk busy with other writebacks) until the test lets it go: the kinds called,
   * in order, the go of each still held, and the end of it all (every held call let go, the real calls back).
   */
  function holdSyncs(...kinds: ('fdatasync' | 'fsync')[]) {
    const held: string[] = [];
    const go: (() => void)[] = [];
    const mocks = kinds.map((kind) => {
      const real = fs[kind].bind(fs);
      return mock.method(fs, kind, (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
        held.push(kind);
        go.push(() => real(fd, cb));
      });
    });
    syncBuiltinESMExports();
    return {
      held,
      go,
      restore: (): void => {
        for (const next of go.splice(0)) next();
        for (const m of mocks) m.mock.restore();
        syncBuiltinESMExports();
      },
    };
  }

  /** Let every held sync go, as they come, until the pass says done. */
  const doneLettingSyncsGo = (pass: { answers: () => string }, go: (() => void)[]) =>
    until(() => {
      for (const next of go.splice(0)) next();
      return /^done$/m.test(pass.answers());
    }, 'the durable pass is done');

  async function endOnlyPass(
    folder: string,
    over: Partial<StreamOffer>,
    receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended }),
    before: Buffer[] = [],
  ): Promise<{ answers: string; verified: Record<string, number | undefined> | undefined }> {
    const others = receiver.active();
    const pass = await passOfEndAlone('node-e', folder, over, receiver, before);
    try {
      await until(() => receiver.active() === others, 'the receiver let the pass go');
      return { answers: pass.answers(), verified: pass.reply.ok ? pass.reply.verified : undefined };
    } finally {
      await pass.close();
    }
  }

  it(
    'fails a later pass over a file whose background writeback failed (the sync it would run returns 0 over lost data)',
    { timeout: 30_000 },
    async () => {
      // Given a copy an earlier live pass left, whose file's background writeback failed: the receiver kept that
      // beside the file (the kernel says it once, and marks the pages clean)
      const folder = join(root, 'lost-writeback');
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'root.hds'), Buffer.alloc(4096, 1));
      writeFileSync(join(folder, 'root.hds.haul-writeback-failed'), 'EIO: i/o error, fdatasync\n');
      // When the next pass, durable (the frozen one), with nothing written to the file since, is taken: it only
      // syncs it
      const { answers } = await endOnlyPass('lost-writeback', {
        update: true,
        durable: true,
        manifest: [{ path: 'root.hds', kind: 'file', size: 4096, extents: [] }],
      });

      // Then the pass fails on that file (before, its sync returned 0 and the pass said done)
      assert.match(answers, /^error root\.hds: a sync of its data failed \(EIO/m);
      assert.ok(!/^done$/m.test(answers), answers);
    },
  );

  /** A chunk frame of `data` at `offset` of `path`, as a sender sends it. */
  const frame = (id: number, path: string, offset: number, data: Buffer): Buffer =>
    Buffer.concat([
      encodeHeader({ t: 'chunk', id, path, offset, len: data.length, crc32: chunkDigest(data) }),
      data,
    ]);

  it(
    'fails an update pass whose sender ended it before every extent it declared, and one that made a file it did not send whole',
    { timeout: 30_000 },
    async () => {
      // Given a copy an earlier pass left, and an update pass declaring two extents of it
      const folder = join(root, 'update-gaps');
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'root.hds'), Buffer.alloc(12288, 1));
      const extents: [number, number][] = [
        [0, 4096],
        [8192, 12288],
      ];
      // When its sender sends the first and ends the pass
      const { answers } = await endOnlyPass(
        'update-gaps',
        { update: true, manifest: [{ path: 'root.hds', kind: 'file', size: 12288, extents }] },
        undefined,
        [frame(0, 'root.hds', 0, Buffer.alloc(4096, 2))],
      );
      // Then the pass fails naming the range that never came (before: done, the copy's older bytes left there)
      assert.match(answers, /^error root\.hds: its extent 8192-12288 did not arrive whole/m);
      assert.ok(!/^done$/m.test(answers), answers);

      // And given a pass into a file no earlier pass left, whose sender sends only the extent it declared
      const made = await endOnlyPass(
        'update-gaps',
        {
          update: true,
          manifest: [{ path: 'new.hds', kind: 'file', size: 8192, extents: [[4096, 8192]] }],
        },
        undefined,
        [frame(0, 'new.hds', 4096, Buffer.alloc(4096, 3))],
      );
      // Then it fails too: the file's first 4096 bytes would read as zeros
      assert.match(
        made.answers,
        /^error new\.hds: not here from an earlier pass, and this pass did not send all 8192 bytes of it/m,
      );
      assert.ok(!/^done$/m.test(made.answers), made.answers);
    },
  );

  it(
    "lets a reception go when a received file's close reports an error (NFS), the slot released and the streamer running",
    { timeout: 30_000 },
    async () => {
      // Given a reception of a two-chunk file whose sender sent the first chunk, and a close of its part file that
      // reports a delayed write error
      const first = randomBytes(CHUNK);
      const sender = await fakeSender((s) => s.write(frame(0, 'pages.img', 0, first)));
      register('node-a', sender.port);
      const receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended });
      const real = fs.closeSync;
      let failed = 0;
      const m = mock.method(fs, 'closeSync', (fd: number) => {
        const part = fs.readlinkSync(`/proc/self/fd/${fd}`).endsWith('.haul-part');
        real(fd);
        if (part && failed++ === 0) throw Object.assign(new Error('EIO: i/o error, close'), { code: 'EIO' });
      });
      syncBuiltinESMExports();
      try {
        const o = { ...offer('node-a', sender.port, 'close-fails', 2 * CHUNK) };
        assert.equal((await receiver.accept(o)).ok, true);
        await until(() => existsSync(join(root, 'close-fails', 'pages.img.haul-part')), 'the part file made');
        await until(
          () => statSync(join(root, 'close-fails', 'pages.img.haul-part')).size === CHUNK,
          'chunk 0 written',
        );
        // When the connection ends (the sender stops), and the part file's close throws
        await connectionsEnd(sender, receiver, 1);
        // Then the slot was released (connectionsEnd waits for it) and nothing ended this process: the error was
        // logged (before, it escaped the close handler as an unhandled rejection, and ended the streamer)
        assert.equal(failed, 1);
      } finally {
        m.mock.restore();
        syncBuiltinESMExports();
        await sender.close();
      }
    },
  );

  it(
    'tells the sender of a part file whose durable sync failed that none of it is verified, though it reads back whole',
    { timeout: 30_000 },
    async () => {
      // Given a part file an earlier durable pass received whole, whose finish failed in its sync (kept beside the
      // file: the kernel says it once, and a sync on a new descriptor would return 0)
      const folder = join(root, 'lost-sync');
      mkdirSync(folder, { recursive: true });
      const chunk = randomBytes(CHUNK);
      const part = new PartFile(join(folder, 'pages.img'), CHUNK, 0o644, 0);
      part.write(0, chunk, chunkDigest(chunk));
      part.close();
      writeFileSync(join(folder, 'pages.img.haul-writeback-failed'), "a pass's fdatasync: EIO: i/o error\n");

      // When the same pass is offered again, and its sender sends nothing more
      const { answers, verified } = await endOnlyPass('lost-sync', {
        durable: true,
        manifest: [{ path: 'pages.img', kind: 'file', size: CHUNK }],
      });

      // Then the offer's answer trusts none of the file (the sender sends it again from its first byte; before, all
      // of it was verified and the pass said done over data that never reached the disk), and a pass that does not
      // send it fails, the file not given its name
      assert.deepEqual(verified, { 'pages.img': 0 });
      assert.match(answers, /^error pages\.img: never received/m);
      assert.ok(!/^done$/m.test(answers), answers);
      assert.equal(existsSync(join(folder, 'pages.img')), false);
    },
  );

  /**
   * What `fn` synced with fdatasync (the files) and fsync (the folders), by path, in order, each sync let through.
   */
  async function syncedFiles<T>(
    fn: () => Promise<T>,
  ): Promise<{ synced: string[]; folders: string[]; value: T }> {
    const synced: string[] = [];
    const folders: string[] = [];
    const spy =
      (into: string[], real: typeof fs.fsync) =>
      (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
        into.push(fs.readlinkSync(`/proc/self/fd/${fd}`));
        real(fd, cb);
      };
    const files = mock.method(fs, 'fdatasync', spy(synced, fs.fdatasync.bind(fs)));
    const dirs = mock.method(fs, 'fsync', spy(folders, fs.fsync.bind(fs)));
    syncBuiltinESMExports();
    try {
      return { synced, folders, value: await fn() };
    } finally {
      files.mock.restore();
      dirs.mock.restore();
      syncBuiltinESMExports();
    }
  }

  it(
    'syncs, in a durable update pass, the folders of the copy’s files, not only its own',
    { timeout: 30_000 },
    async () => {
      // Given a copy whose file an earlier live pass renamed into a folder of its own (unsynced)
      mkdirSync(join(root, 'update-subdir', 'sub'), { recursive: true });
      writeFileSync(join(root, 'update-subdir', 'sub', 'root.hds'), Buffer.alloc(4096, 1));

      // When the frozen pass, an update pass with nothing left to send, ends
      const { synced, folders, value } = await syncedFiles(() =>
        endOnlyPass('update-subdir', {
          update: true,
          durable: true,
          manifest: [
            { path: 'sub', kind: 'dir' },
            { path: 'sub/root.hds', kind: 'file', size: 4096, extents: [] },
          ],
        }),
      );

      // Then it synced the file and every folder on its way (before, the copy's own folder and its parent only)
      assert.match(value.answers, /^done$/m);
      assert.deepEqual(synced, [join(root, 'update-subdir', 'sub', 'root.hds')]);
      assert.deepEqual(
        new Set(folders),
        new Set([root, join(root, 'update-subdir'), join(root, 'update-subdir', 'sub')]),
      );
    },
  );

  /** A finished root.hds of 4096 bytes in each of `folders` below the root, and the manifest of it. */
  function finishedDisk(...folders: string[]): StreamOffer['manifest'] {
    for (const f of folders) {
      mkdirSync(join(root, f), { recursive: true });
      writeFileSync(join(root, f, 'root.hds'), Buffer.alloc(4096, 1));
    }
    return [{ path: 'root.hds', kind: 'file', size: 4096 }];
  }

  it(
    "ends a durable pass without waiting for another copy's background writeback, and syncs its own queued file itself",
    { timeout: 30_000 },
    async () => {
      // Given a receiver whose background writeback of another copy's disk runs and does not end (a big disk's, on
      // a busy device), and whose writeback of this copy's disk, from its last live pass, is queued behind it
      const started: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const receiver = createReceiver({
        allowedRoots: [root],
        log,
        registry,
        intended: allIntended,
        syncInBackground: (path) => (started.push(path), held),
      });
      const manifest = finishedDisk('wb-other', 'wb-mine', 'wb-third');
      for (const f of ['wb-other', 'wb-mine'])
        assert.match((await endOnlyPass(f, { writeBack: true, manifest }, receiver)).answers, /^done$/m);
      await until(() => started.length === 1, "the other copy's writeback started");

      // When this copy's frozen pass (durable) ends
      const { synced, value } = await syncedFiles(() =>
        endOnlyPass('wb-mine', { durable: true, manifest }, receiver),
      );

      // Then it is done while the other writeback still runs (before, it waited for every writeback of the node), and
      // its own queued writeback was taken out, the pass having synced the file itself: the next one queued runs
      // right after the other's
      assert.match(value.answers, /^done$/m);
      assert.deepEqual(synced, [join(root, 'wb-mine', 'root.hds')]);
      assert.deepEqual(started, [join(root, 'wb-other', 'root.hds')]);
      release();
      assert.match(
        (await endOnlyPass('wb-third', { writeBack: true, manifest }, receiver)).answers,
        /^done$/m,
      );
      await until(() => started.length === 2, "the third copy's writeback started");
      assert.deepEqual(started, [join(root, 'wb-other', 'root.hds'), join(root, 'wb-third', 'root.hds')]);
    },
  );

  it(
    'answers an offer of the transfer again only once the earlier attempt’s finish has ended, its files left open to it',
    { timeout: 30_000 },
    async () => {
      // Given attempt 1, a durable update pass, whose sender sent its one extent and its end, and whose finish waits
      // in the file's fdatasync (a busy disk)
      mkdirSync(join(root, 'finish-again'), { recursive: true });
      writeFileSync(join(root, 'finish-again', 'root.hds'), Buffer.alloc(4096, 1));
      const manifest: StreamOffer['manifest'] = [
        { path: 'root.hds', kind: 'file', size: 4096, extents: [[0, 4096]] },
      ];
      const { go: held, restore } = holdSyncs('fdatasync');
      const extent = Buffer.alloc(4096, 2);
      const first = await fakeSender((sock) => {
        sock.write(
          Buffer.concat([
            encodeHeader({
              t: 'chunk',
              id: 0,
              path: 'root.hds',
              offset: 0,
              len: 4096,
              crc32: chunkDigest(extent),
            }),
            extent,
          ]),
        );
        sock.write(encodeHeader({ t: 'end' }));
      });
      const second = await fakeSender(() => {});
      const receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended });
      const o = (port: number): StreamOffer => ({
        ...offer('node-a', port, 'finish-again'),
        update: true,
        durable: true,
        manifest,
      });
      try {
        register('node-a', first.port);
        assert.equal((await receiver.accept(o(first.port))).ok, true);
        await until(() => held.length === 1, "attempt 1's sync started");

        // When attempt 2 is offered (its sender gave up on the first connection), which ends attempt 1's connection
        register('node-a', second.port);
        let answered = false;
        const again = receiver.accept(o(second.port)).then((r) => ((answered = true), r));
        await closed(first.seen[0]!);

        // Then attempt 2 is not answered while attempt 1's finish is under way (before, the close let go of the
        // folder and closed the file being synced): nothing happens in the receiver for it to wait on, so a bound
        await Promise.race([again, delay(500)]);
        assert.equal(answered, false);
        for (const go of held.splice(0)) go();
        assert.equal((await again).ok, true);
        // And attempt 1's sync ran on the file it had open, which holds the extent
        assert.equal(existsSync(join(root, 'finish-again', 'root.hds.haul-writeback-failed')), false);
        assert.ok(readFileSync(join(root, 'finish-again', 'root.hds')).equals(extent));
        await connectionsEnd(second, receiver, 1);
      } finally {
        restore();
        await first.close();
        await second.close();
      }
    },
  );

  it(
    'keeps the connection of a durable pass whose finish outlasts the idle timeout, saying "wait", and answers done',
    { timeout: 30_000 },
    async () => {
      // Given a receiver whose connections close after 300 ms of nothing moving, and a durable pass whose file sync
      // does not return until the test lets it (a busy disk, or a writeback of the file it waits for)
      const receiver = createReceiver({
        allowedRoots: [root],
        log,
        registry,
        intended: allIntended,
        idleMs: 300,
      });
      const manifest = finishedDisk('sync-long');
      const { go, restore } = holdSyncs('fdatasync');
      const pass = await passOfEndAlone('node-g', 'sync-long', { durable: true, manifest }, receiver);
      try {
        // When the sync takes several idle timeouts: the receiver says "wait" meanwhile
        await until(() => go.length === 1, "the durable pass's sync started");
        await until(
          () => (pass.answers().match(/^wait$/gm) ?? []).length >= 4,
          'four "wait" lines: over a second',
        );
        for (const next of go.splice(0)) next();

        // Then the pass is done on the same connection (before, the idle timeout closed it after 300 ms: the sender
        // lost the pass's done and offered it again, each offer waiting for this finish)
        await doneLettingSyncsGo(pass, go);
      } finally {
        restore();
        await pass.close();
      }
    },
  );

  it(
    'receives other transfers while a durable pass syncs: its syncs run off the receiver’s loop',
    { timeout: 30_000 },
    async () => {
      // Given a durable pass (a frozen one) whose syncs do not return until the test lets them (a disk busy with
      // other writebacks): the file's fdatasync, then its folders' fsyncs
      const receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended });
      const manifest = finishedDisk('sync-slow', 'sync-beside', 'sync-beside-2');
      const { held, go, restore } = holdSyncs('fdatasync', 'fsync');
      const pass = await passOfEndAlone('node-f', 'sync-slow', { durable: true, manifest }, receiver);
      try {
        // When another transfer into the streamer ends while the file's sync waits, and another while a folder's does
        await until(() => go.length === 1, "the frozen pass's file sync started");
        const beside = await endOnlyPass('sync-beside', { manifest }, receiver);
        go.shift()!();
        await until(() => go.length === 1, "the frozen pass's first folder sync started");
        const beside2 = await endOnlyPass('sync-beside-2', { manifest }, receiver);

        // Then each is received and done meanwhile (before, fdatasyncSync and fsyncSync held the loop, and with it
        // every transfer of the streamer), and the durable pass is done once its syncs return
        assert.match(beside.answers, /^done$/m);
        assert.match(beside2.answers, /^done$/m);
        assert.deepEqual(held, ['fdatasync', 'fsync']);
        assert.ok(!/^done$/m.test(pass.answers()), pass.answers());
        await doneLettingSyncsGo(pass, go);
      } finally {
        restore();
        await pass.close();
      }
    },
  );

  it(
    'syncs, in a durable full pass, a file an earlier pass finished (its writeback may never have run)',
    { timeout: 30_000 },
    async () => {
      // Given a copy's disk an earlier live pass finished, in a streamer that has restarted since (its writeback,
      // queued in the process that ended, never ran), on a disk whose writes now fail
      const manifest = finishedDisk('finished-unsynced');
      const m = mock.method(fs, 'fdatasync', (_fd: number, cb: (err: Error) => void) =>
        cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })),
      );
      syncBuiltinESMExports();
      let answers: string;
      try {
        // When the frozen pass, a full one with nothing left to send, ends
        ({ answers } = await endOnlyPass('finished-unsynced', { durable: true, manifest }));
      } finally {
        m.mock.restore();
        syncBuiltinESMExports();
      }

      // Then it synced the file, and fails on the failed sync (before, it said done without a sync), kept for every
      // later pass over the file
      assert.match(answers, /^error cannot finish: EIO/m);
      assert.ok(!/^done$/m.test(answers), answers);
      assert.match(
        readFileSync(join(root, 'finished-unsynced', 'root.hds.haul-writeback-failed'), 'utf8'),
        /EIO/,
      );
    },
  );

  it(
    'makes an empty file of a full pass where the same path had a failed writeback in a removed copy',
    { timeout: 30_000 },
    async () => {
      // Given a failed writeback this process kept of an empty file of a copy that was removed since (a rollback's
      // removeFiles took the folder and its marker; only this process remembers)
      const folder = join(root, 'removed-copy');
      keepWriteBackFailure(join(folder, 'DiskDescriptor.xml.lck'), 'background writeback: EIO: i/o error');

      // When a new full pass brings the copy's empty file there again
      const { answers } = await endOnlyPass('removed-copy', {
        manifest: [{ path: 'DiskDescriptor.xml.lck', kind: 'file', size: 0 }],
      });

      // Then it is made, and the pass is done: a file with no data has nothing that failed to reach the disk
      assert.match(answers, /^done$/m);
      assert.equal(statSync(join(folder, 'DiskDescriptor.xml.lck')).size, 0);
    },
  );

  it('refuses more transfers at once from one node than its quota', { timeout: 30_000 }, async () => {
    const held = await fakeSender(() => {});
    register('node-a', held.port);
    const receiver = createReceiver({
      allowedRoots: [root],
      log,
      registry,
      intended: allIntended,
      perPeer: 2,
    });
    assert.equal((await receiver.accept(offer('node-a', held.port, 'q1'))).ok, true);
    assert.equal((await receiver.accept(offer('node-a', held.port, 'q2'))).ok, true);
    const third = await receiver.accept(offer('node-a', held.port, 'q3'));
    assert.equal('error' in third && third.error.code, 'HAUL_STREAMER_BUSY');
    await until(() => held.seen.length === 2, 'two connected');
    for (const s of held.seen) s.destroy();
    await until(() => receiver.active() === 0, 'released');
    assert.equal((await receiver.accept(offer('node-a', held.port, 'q4'))).ok, true);
    await until(() => held.seen.length === 3, 'connected again');
    held.seen[2]!.destroy();
    await held.close();
  });

  it(
    'ends a reception still writing into a folder before it answers a new offer for that folder',
    { timeout: 30_000 },
    async () => {
      // Given a reception of attempt 1 into "again", its sender holding the connection open
      const first = await fakeSender(() => {});
      const second = await fakeSender(() => {});
      const receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended });
      register('node-a', first.port);
      assert.equal((await receiver.accept(offer('node-a', first.port, 'again'))).ok, true);
      await until(() => first.seen.length === 1 && receiver.active() === 1, 'attempt 1 connected');

      // When attempt 2 of the same transfer is offered (the sender gave up on the first connection)
      register('node-a', second.port);
      const reply = await receiver.accept(offer('node-a', second.port, 'again'));

      // Then attempt 1 has ended before the answer (its slot freed: one reception counted, not two), its connection
      // closes, and attempt 2 connects
      assert.equal(reply.ok, true);
      assert.equal(receiver.active(), 1);
      await closed(first.seen[0]!);
      await until(() => second.seen.length === 1, 'attempt 2 connected');

      // And an offer of another node into that folder is refused, attempt 2 left alone
      register('node-c', first.port);
      const intruder = await receiver.accept(offer('node-c', first.port, 'again'));
      assert.deepEqual('error' in intruder && [intruder.error.code, intruder.error.field], [
        'HAUL_STREAMER_BUSY',
        'targetDir',
      ]);
      assert.equal(receiver.active(), 1);
      assert.equal(first.seen.length, 1, 'no connection for the refused offer');

      // And a reception into another folder is left alone
      assert.equal((await receiver.accept(offer('node-a', second.port, 'other'))).ok, true);
      assert.equal(receiver.active(), 2);
      await until(() => second.seen.length === 2, 'the other connected');
      for (const s of second.seen) s.destroy();
      await until(() => receiver.active() === 0, 'released');
      await first.close();
      await second.close();
    },
  );

  /**
   * A real transfer of `manifest` from `source` into the receiving folder `name`: offered, then sent from `verified`
   * (the offer's answer when undefined). What the offer answered, and what the sender sent.
   */
  async function transferInto(
    name: string,
    source: string,
    manifest: StreamOffer['manifest'],
    verified?: Record<string, number>,
    sender: Pick<SendOptions, 'tamper'> & { older?: true } = {},
  ) {
    const server = await createDataServer({ host: '127.0.0.1' });
    const listener = server.expect('node-b');
    register('node-a', server.port);
    const receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended });
    const o: StreamOffer = { ...offer('node-a', server.port, name), manifest };
    const reply = await receiver.accept({ ...o, connect: { ...o.connect, token: listener.token } });
    assert.ok(reply.ok, JSON.stringify(reply));
    const sock = await listener.accept(5_000);
    try {
      const sent = await sendFiles({
        sourceDir: source,
        manifest,
        sock,
        verified: verified ?? reply.verified,
        ...(reply.finishesVerified && !sender.older ? { finishesVerified: true } : {}),
        ...(sender.tamper ? { tamper: sender.tamper } : {}),
        throttle: () => Promise.resolve(),
        onBytes: () => {},
      });
      await until(() => receiver.active() === 0, 'released');
      return { verified: reply.verified, sent };
    } finally {
      sock.destroy();
      await server.close();
    }
  }

  /**
   * A folder `name` under the receiver's root whose pages.img (`size` bytes) has its first `chunks` verified in its
   * part file: chunks of `data`, or random ones.
   */
  function partFileIn(name: string, size: number, chunks: number, data?: Buffer): void {
    mkdirSync(join(root, name), { recursive: true });
    const part = new PartFile(join(root, name, 'pages.img'), size, 0o644, 0);
    for (let k = 0; k < chunks; k++) {
      const chunk = data ? data.subarray(k * CHUNK, (k + 1) * CHUNK) : randomBytes(CHUNK);
      part.write(k * CHUNK, chunk, chunkDigest(chunk));
    }
    part.close();
  }

  /** The manifest of one file, pages.img, of `size` bytes. */
  const pagesOf = (size: number) => [{ path: 'pages.img', kind: 'file' as const, size }];

  /** `target` holds pages.img with `data`, and nothing else (no part or sums file). */
  function holdsOnly(target: string, data: Buffer): void {
    assert.ok(readFileSync(join(target, 'pages.img')).equals(data));
    assert.deepEqual(readdirSync(target), ['pages.img']);
  }

  /** The receiver connected `n` times to the fake sender: those connections closed, and every slot released. */
  async function connectionsEnd(held: { seen: Socket[] }, receiver: Receiver, n: number): Promise<void> {
    await until(() => held.seen.length === n, `${n} connected`);
    for (const sock of held.seen) sock.destroy();
    await until(() => receiver.active() === 0, 'released');
  }

  /** A source folder and a target folder of that name, the target's made under the receiver's root. */
  function folders(name: string): { source: string; target: string } {
    const source = join(work, `${name}-source`);
    const target = join(root, name);
    for (const d of [source, target]) mkdirSync(d, { recursive: true });
    return { source, target };
  }

  it(
    'takes a file sent again from its start in place of the one it had finished (a first pass started over)',
    { timeout: 30_000 },
    async () => {
      // Given a target that finished pages.img in an earlier attempt, and the source's pages.img since written
      const size = 3 * CHUNK + 100;
      const { source, target } = folders('started-over');
      writeFileSync(join(target, 'pages.img'), Buffer.alloc(size, 1));
      const now = randomBytes(size);
      writeFileSync(join(source, 'pages.img'), now);

      // When the sender trusts none of it (its tracker started over) and sends the file from its start
      const r = await transferInto('started-over', source, pagesOf(size), {});

      // Then the target had said it has it all, holds what was sent, and no part file is left
      assert.deepEqual(r.verified, { 'pages.img': size });
      assert.equal(r.sent.bytesSent, size);
      holdsOnly(target, now);
    },
  );

  it(
    'starts a finished file over when its first chunk, sent from the start, arrives corrupt (sent again after)',
    { timeout: 30_000 },
    async () => {
      // Given a target that finished pages.img, and a sender that sends it from its start, its first chunk corrupted
      // once in flight
      const size = 2 * CHUNK + 100;
      const { source, target } = folders('started-over-corrupt');
      writeFileSync(join(target, 'pages.img'), Buffer.alloc(size, 1));
      const now = randomBytes(size);
      writeFileSync(join(source, 'pages.img'), now);
      let corrupt = true;
      const tamper = (_p: string, offset: number, data: Buffer) => {
        if (corrupt && offset === 0) data[0] = data[0]! ^ 0xff;
        if (offset === 0) corrupt = false;
      };

      // When the sender trusts none of it
      const r = await transferInto('started-over-corrupt', source, pagesOf(size), {}, { tamper });

      // Then the file was started over at that first chunk (before, its next chunk opened it to resume: ENOENT)
      assert.equal(r.sent.resent, 1);
      holdsOnly(target, now);
    },
  );

  it(
    'takes from a sender older than finishesVerified the last chunk of a finished file as held',
    { timeout: 30_000 },
    async () => {
      // Given a target that finished pages.img (its size not a multiple of a chunk)
      const size = CHUNK + 100;
      const { source, target } = folders('older-sender');
      const data = randomBytes(size);
      for (const dir of [source, target]) writeFileSync(join(dir, 'pages.img'), data);

      // When a sender that does not know finishesVerified sends from what the target verified
      const r = await transferInto('older-sender', source, pagesOf(size), undefined, { older: true });

      // Then the last chunk it sends again changes nothing, and the reception ends well
      assert.equal(r.sent.bytesSent, 100);
      holdsOnly(target, data);
    },
  );

  it(
    'leaves no part or sums file of an earlier reception beside a finished file or an empty one',
    { timeout: 30_000 },
    async () => {
      // Given a target that finished pages.img but still has its sums (its receiver died between the finish's rename
      // and its unlink), and the part and sums of empty.img from an attempt when it was not empty
      const size = CHUNK + 100;
      const { source, target } = folders('leftovers');
      const data = randomBytes(size);
      for (const dir of [source, target]) writeFileSync(join(dir, 'pages.img'), data);
      writeFileSync(join(source, 'empty.img'), '');
      for (const f of ['pages.img.haul-sums', 'empty.img.haul-part', 'empty.img.haul-sums'])
        writeFileSync(join(target, f), 'left by an earlier reception');

      // When the sender sends from what the target verified (nothing is left to send)
      const manifest = [
        { path: 'empty.img', kind: 'file' as const, size: 0 },
        { path: 'pages.img', kind: 'file' as const, size },
      ];
      const r = await transferInto('leftovers', source, manifest);

      // Then nothing was sent (the last chunk of pages.img, shorter than a chunk, neither), and the folder holds the
      // two files and nothing else
      assert.equal(r.sent.bytesSent, 0);
      assert.deepEqual(readdirSync(target).sort(), ['empty.img', 'pages.img']);
      assert.ok(readFileSync(join(target, 'pages.img')).equals(data));
    },
  );

  it(
    'finishes a part file an earlier reception verified to its end (cut before its rename), with nothing sent',
    { timeout: 30_000 },
    async () => {
      // Given a target whose pages.img (two whole chunks) is all in its part file, every chunk's sum recorded
      const size = 2 * CHUNK;
      const { source, target } = folders('verified-whole');
      const data = randomBytes(size);
      writeFileSync(join(source, 'pages.img'), data);
      partFileIn('verified-whole', size, 2, data);

      // When the sender sends from what the target verified
      const r = await transferInto('verified-whole', source, pagesOf(size));

      // Then nothing was sent, and the file has its name (before, the reception failed: "never received")
      assert.deepEqual(r.verified, { 'pages.img': size });
      assert.equal(r.sent.bytesSent, 0);
      holdsOnly(target, data);
    },
  );

  it(
    'takes two offers of one transfer into one folder one after the other: the later ends the earlier',
    { timeout: 30_000 },
    async () => {
      // Given a folder with a part file to read back, and a sender that holds every connection open
      const size = 3 * CHUNK;
      const target = join(root, 'offered-twice');
      mkdirSync(target, { recursive: true });
      const part = new PartFile(join(target, 'pages.img'), size, 0o644, 0);
      const chunk = randomBytes(CHUNK);
      part.write(0, chunk, chunkDigest(chunk));
      part.close();
      const held = await fakeSender(() => {});
      register('node-a', held.port);
      const receiver = createReceiver({ allowedRoots: [root], log, registry, intended: allIntended });

      // When the same transfer is offered twice at once (its sender gave up waiting for the first answer)
      const replies = await Promise.all([
        receiver.accept(offer('node-a', held.port, 'offered-twice', size)),
        receiver.accept(offer('node-a', held.port, 'offered-twice', size)),
      ]);

      // Then both are answered with the same resume point, and one reception is left: the later ended the earlier
      assert.deepEqual(
        replies.map((r) => r.ok && r.verified),
        [{ 'pages.img': CHUNK }, { 'pages.img': CHUNK }],
      );
      assert.equal(receiver.active(), 1);
      await until(() => held.seen.length > 0, 'the later one connected');
      for (const sock of held.seen) sock.destroy();
      await until(() => receiver.active() === 0, 'released');
      await held.close();
    },
  );

  it(
    "answers a sender that takes it with the read-back's progress, reads on, and answers the transfer's next offer from that one read",
    { timeout: 30_000 },
    async () => {
      // Given a folder whose part file holds two verified chunks, on a disk whose second chunk read waits for `slow`
      const size = 3 * CHUNK;
      partFileIn('read-back', size, 2);
      let release!: () => void;
      const slow = new Promise<void>((r) => (release = r));
      let reads = 0;
      const held = await fakeSender(() => {});
      register('node-a', held.port);
      const receiver = createReceiver({
        allowedRoots: [root],
        log,
        registry,
        intended: allIntended,
        readBackAnswerMs: 50,
        onReadBack: async () => {
          if (++reads === 2) await slow;
        },
      });
      const takes = { takesReadBackProgress: true };

      // When its transfer is offered by a sender that takes a read-back's progress, and offered again once the read
      // reached its second chunk
      const first = await receiver.accept(offer('node-a', held.port, 'read-back', size), takes);
      await until(() => reads === 2, 'the first chunk read, the second held');
      const again = await receiver.accept(offer('node-a', held.port, 'read-back', size), takes);

      // Then both are answered with how far the one read-back got (the first at most its first chunk, by then
      // exactly), and no slot of node-a's quota stays taken (a read-back counts apart)
      assert.ok('readingBack' in first && first.readingBack.bytesRead <= CHUNK, JSON.stringify(first));
      assert.deepEqual(again, { ok: false, readingBack: { bytesRead: CHUNK, bytesTotal: size } });
      assert.equal(receiver.active(), 0);
      // And another migration's offer into the folder is refused while it reads
      const other = await receiver.accept(
        { ...offer('node-a', held.port, 'read-back', size), migrationId: 'mig-x' },
        takes,
      );
      assert.deepEqual('error' in other && [other.error.code, other.error.field], [
        'HAUL_STREAMER_BUSY',
        'targetDir',
      ]);

      // When the disk reads on (an offer of an older sender, which waits for the read to end)
      release();
      const done = await receiver.accept(offer('node-a', held.port, 'read-back', size));

      // Then the next offer is answered from that read (each chunk read once) and received
      assert.deepEqual(done, { ok: true, verified: { 'pages.img': 2 * CHUNK }, finishesVerified: true });
      assert.equal(reads, 2);
      await connectionsEnd(held, receiver, 1);
      await held.close();
    },
  );

  it(
    "counts a peer's read-backs apart from its receptions: no more at once than its quota, and none holding a reception's slot",
    { timeout: 30_000 },
    async () => {
      // Given a receiver that takes one transfer at a time from a node, and two folders with a part file to read back,
      // the first's read held by its disk
      const held = await fakeSender(() => {});
      register('node-a', held.port);
      for (const name of ['quota-a', 'quota-b']) partFileIn(name, CHUNK, 1);
      let release!: () => void;
      const slow = new Promise<void>((r) => (release = r));
      const receiver = createReceiver({
        allowedRoots: [root],
        log,
        registry,
        intended: allIntended,
        perPeer: 1,
        readBackAnswerMs: 50,
        onReadBack: (path) => (path.includes('quota-a') ? slow : Promise.resolve()),
      });
      const takes = { takesReadBackProgress: true };

      // When the first is answered with its progress, and the second is offered meanwhile
      const first = await receiver.accept(offer('node-a', held.port, 'quota-a', CHUNK), takes);
      const second = await receiver.accept(offer('node-a', held.port, 'quota-b', CHUNK), takes);

      // Then the first holds no reception slot, and the second is refused: node-a has its one read-back running
      assert.equal('readingBack' in first, true);
      assert.equal(receiver.active(), 0);
      assert.deepEqual('error' in second && [second.error.code, second.error.message], [
        'HAUL_STREAMER_BUSY',
        'node-a already has 1 read-backs running in this streamer',
      ]);
      // And once the first read ends, both are taken in turn (offers that wait for their read to end)
      release();
      assert.equal((await receiver.accept(offer('node-a', held.port, 'quota-a', CHUNK))).ok, true);
      await connectionsEnd(held, receiver, 1);
      assert.equal((await receiver.accept(offer('node-a', held.port, 'quota-b', CHUNK))).ok, true);
      await connectionsEnd(held, receiver, 2);
      await held.close();
    },
  );

  // Each impostor's certificate fails the one TLS context node-b's receiver shares between its connections.
  for (const [peer, certificate, target] of [
    ['a peer whose certificate names another node', 'streamer@node-c', 'tls-imp'],
    [
      'a peer that names the sending node in a certificate of a CA the cluster does not trust',
      'impostor-a',
      'tls-foreign',
    ],
  ] as const)
    it(`with TLS, does not talk to ${peer}`, { timeout: 30_000 }, async () => {
      // Given a sender registered as node-a with that certificate
      let wrote = false;
      const impostor = await fakeSender((s) => s.on('data', () => (wrote = true)), certificate);
      register('node-a', impostor.port, true);
      const receiver = createReceiver({
        allowedRoots: [root],
        log,
        registry,
        intended: allIntended,
        tls: pki.material('streamer@node-b'),
      });
      // When node-b's receiver takes node-a's offer
      assert.equal((await receiver.accept(offer('node-a', impostor.port, target))).ok, true);
      // Then it connects, refuses the certificate and ends the reception without sending the token
      await until(() => impostor.seen.length === 1, 'connected');
      await closed(impostor.seen[0]!);
      await until(() => receiver.active() === 0, 'released');
      assert.equal(wrote, false, 'the token never reached the impostor');
      await impostor.close();
    });
});

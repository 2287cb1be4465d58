import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import {
  buckets,
  connectBus,
  createEventLog,
  openBucket,
  createLogger,
  ensureTopology,
  sendCommand,
  encodeJson,
  decodeJson,
  subjects,
  type EventLog,
} from '@haul/bus';
import {
  createValidators,
  type StepCommand,
  type StreamArgs,
  type StreamOfferReply,
  type TransferProgress,
} from '@haul/schemas';
import {
  awaitEvent,
  awaitProgress,
  outcomeOf,
  startNatsServer,
  startService,
  stepIntended,
  tempIdentities,
  type NatsServer,
} from '@haul/test';
import { createImageStreamer, type ImageStreamer, type StreamerConfig } from '../src/app.ts';
import { PartFile } from '../src/part-file.ts';
import { CHUNK, chunkDigest } from '../src/wire.ts';
import { openDescriptors, until } from './support.ts';

const validators = createValidators();
const log = createLogger('image-streamer-test', undefined, { HAUL_LOG_LEVEL: 'warn' });
/** Signing on: the streamers sign as themselves, commands come signed from "the coordinator" with an intent. */
const ids = tempIdentities(['node-a', 'node-b', 'node-c', 'node-d']);
const coordinator = ids.trust('coordinator');
let intents: EventLog;
/** What the coordinator does for a command: intend it in the log, then send it signed. */
async function send(nc: NatsConnection, cmd: StepCommand): Promise<void> {
  await intents.append(stepIntended(cmd));
  await sendCommand(nc, validators, coordinator, cmd);
}
/** A transfer started directly (no command) still reports into a log that intends its command. */
async function intendTransfer(
  migrationId: string,
  commandId: string,
  args: StreamArgs,
  node = 'node-a',
): Promise<void> {
  await intents.append(
    stepIntended({
      commandId,
      migrationId,
      node,
      executor: 'streamer',
      attempt: 1,
      step: 'streamImages',
      args,
      timeoutMs: 60_000,
    }),
  );
}

const offerSubjectB = subjects.streamOffer('node-b');
/** streamer@<node>'s signature of an offer to node-b. */
const signedBy = (node: string, offer: object) =>
  ids.trust(`streamer@${node}`).sign(offerSubjectB, encodeJson(offer)) ?? {};
/** An offer sent straight to node-b's streamer with these signature headers (node-a's by default); its answer. */
async function offerToB(
  nc: NatsConnection,
  offer: object,
  signature: Record<string, string> = signedBy('node-a', offer),
): Promise<StreamOfferReply> {
  const h = headers();
  for (const [k, v] of Object.entries(signature)) h.set(k, v);
  const m = await nc.request(offerSubjectB, encodeJson(offer), { timeout: 5000, headers: h });
  return decodeJson(m.data) as StreamOfferReply;
}

/**
 * An offer of transfer `transferId` (its migration the id's first part) from node-a to node-b, naming node-a's
 * registered data address and a token nobody issued.
 */
async function offerFromA(nc: NatsConnection, transferId: string, targetDir: string, manifest: object[]) {
  const reg = await (await openBucket(nc, buckets.streamers)).get('node-a');
  const { dataHost, dataPort } = decodeJson(reg!.value) as { dataHost: string; dataPort: number };
  return {
    transferId,
    migrationId: transferId.split(':')[0]!,
    fromNode: 'node-a',
    targetDir,
    connect: { host: dataHost, port: dataPort, token: 'ab'.repeat(16) },
    manifest,
  };
}

function makeTree(dir: string, bigMb: number): void {
  mkdirSync(join(dir, '1'), { recursive: true });
  mkdirSync(join(dir, '2'), { recursive: true });
  writeFileSync(join(dir, '1', 'pages-1.img'), randomBytes(bigMb * 1024 * 1024));
  writeFileSync(join(dir, '1', 'pagemap-1.img'), randomBytes(4100));
  writeFileSync(join(dir, '2', 'pages-1.img'), randomBytes(3 * 1024 * 1024 + 17));
  writeFileSync(join(dir, '2', 'empty.img'), '');
  symlinkSync('../1', join(dir, '2', 'parent'));
}

function digestTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const f of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${f.name}` : f.name;
      if (f.isDirectory()) walk(p);
      else if (f.isSymbolicLink()) out[p] = `-> ${readlinkSync(join(dir, p))}`;
      else
        out[p] = createHash('sha256')
          .update(readFileSync(join(dir, p)))
          .digest('hex');
    }
  };
  walk('');
  return out;
}

/** A streamImages command from node-a to node-b, as the coordinator sends it. */
const streamCommand = (
  migrationId: string,
  subject: string,
  sourceDir: string,
  targetDir: string,
  priority: 'final' | 'iteration',
  bandwidthLimitMBps?: number,
) => ({
  commandId: `${migrationId}:streamImages:${subject}:1`,
  migrationId,
  node: 'node-a',
  executor: 'streamer' as const,
  attempt: 1,
  step: 'streamImages' as const,
  timeoutMs: 60_000,
  args: {
    toNode: 'node-b',
    sourceDir,
    targetDir,
    priority,
    ...(bandwidthLimitMBps ? { bandwidthLimitMBps } : {}),
  },
});

describe('image streamer between two nodes, over a real nats-server', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let events: EventLog;
  let dir: string;
  let a: ImageStreamer;
  let b: ImageStreamer;
  const cfg = (node: string): StreamerConfig => ({
    node,
    listenHost: '127.0.0.1',
    allowedRoots: [join(dir, node)],
    maxRetries: 20,
    progressEveryMs: 200,
  });
  let corruptOnce = false;

  /** node-a's images folder `name` sent into node-b's, intended first as the coordinator does. */
  async function sendFromA(
    migrationId: string,
    commandId: string,
    name: string,
    opts: { writeBack?: true } = {},
  ) {
    const args: StreamArgs = {
      toNode: 'node-b',
      sourceDir: join(dir, 'node-a', 'img', name),
      targetDir: join(dir, 'node-b', 'img', name),
      priority: 'iteration',
    };
    await intendTransfer(migrationId, commandId, args);
    return a.transfer(migrationId, commandId, args, log, opts);
  }

  before(async () => {
    server = await startNatsServer();
    nc = await connectBus({ servers: server.url, name: 'streamer-test' });
    await ensureTopology(nc);
    events = createEventLog(nc, validators, ids.trust('ops'));
    intents = createEventLog(nc, validators, coordinator);
    dir = mkdtempSync(join(tmpdir(), 'haul-stream-'));
    a = createImageStreamer({
      nc,
      validators,
      cfg: cfg('node-a'),
      log,
      trust: ids.trust('streamer@node-a'),
      tamper: (_p, offset, data) => {
        if (corruptOnce && offset === 0 && data.length > 0) {
          corruptOnce = false;
          data[0] = data[0]! ^ 0xff;
        }
      },
    });
    await a.start();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await nc?.drain();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves a tree of images byte for byte, through the command path, with progress and a completion event', async () => {
    b = createImageStreamer({ nc, validators, cfg: cfg('node-b'), log, trust: ids.trust('streamer@node-b') });
    await b.start();
    const src = join(dir, 'node-a', 'img', 'haul-mig-str001');
    makeTree(src, 12);
    const cmd = streamCommand(
      'mig-str001',
      '0',
      src,
      join(dir, 'node-b', 'img', 'haul-mig-str001'),
      'iteration',
      40,
    );
    await send(nc, cmd);
    // A writer of the migration's log that appends with compare-and-set, as the agent and the coordinator do
    // (read after the command's intent is in the log)
    const before = await events.read('mig-str001');
    const moving = await awaitProgress(nc, 'mig-str001', (p) => p.bytesDone > 0 && p.movedAt !== undefined);
    assert.equal(moving.commandId, cmd.commandId);
    assert.equal(
      (await events.read('mig-str001')).lastSeq,
      before.lastSeq,
      "progress reports do not move the migration's last sequence",
    );
    const done = await awaitEvent(events, 'mig-str001', outcomeOf(cmd.commandId), 60_000);
    assert.equal(done.type, 'StepSucceeded');
    assert.deepEqual(digestTree(cmd.args.targetDir), digestTree(src));
    const all = (await events.read('mig-str001')).events.map((e) => e.event);
    assert.deepEqual(
      all.map((e) => e.type),
      ['StepIntended', 'StepSucceeded'],
      'the log holds the intent and the outcome only: progress is reported beside it',
    );
    if (done.type === 'StepSucceeded' && done.data.step === 'streamImages') {
      assert.equal(done.data.result.bytes, 12 * 1024 * 1024 + 4100 + 3 * 1024 * 1024 + 17);
      assert.ok(
        done.data.result.mbPerSec <= 48,
        `bandwidth limit respected: ${done.data.result.mbPerSec} MB/s`,
      );
    }
  });

  it('detects a chunk corrupted in flight and sends it again', async () => {
    const src = join(dir, 'node-a', 'img', 'corrupt');
    makeTree(src, 3);
    corruptOnce = true;
    const r = await sendFromA('mig-str002', 'mig-str002:streamImages:0:1', 'corrupt');
    assert.equal(corruptOnce, false, 'the corruption was injected');
    assert.ok((r.retries ?? 0) >= 1, 'the bad chunk was sent again');
    assert.deepEqual(digestTree(join(dir, 'node-b', 'img', 'corrupt')), digestTree(src));
  });

  it('a live local-disk pass (writeBack): the copy is whole at done, and its background sync closes what it opens', async () => {
    const src = join(dir, 'node-a', 'img', 'writeback');
    makeTree(src, 3);
    // What is open now may close meanwhile (the previous test's sockets): only what opens after must be closed again.
    const before = openDescriptors();
    await sendFromA('mig-str009', 'mig-str009:copyLocalDisk:0.0:node-a:streamer:1', 'writeback', {
      writeBack: true,
    });
    assert.deepEqual(digestTree(join(dir, 'node-b', 'img', 'writeback')), digestTree(src));
    // The receiver (node-b, in this process) opened each file again to sync it, and closes it once synced.
    await until(
      () => [...openDescriptors()].every((d) => before.has(d)),
      'every descriptor of the transfer and its writebacks closed',
    );
  });

  it('a first disk pass whose tracker already runs sends every file: a stale copy of the right size on the target is not trusted', async () => {
    // Given a disk folder on node-a, a tracker that already runs on its disk (an earlier run of the pass, or another
    // migration's copy, started it), and on node-b a stale copy left there: the same names and sizes, other bytes
    const src = join(dir, 'node-a', 'img', 'disk-stale');
    const dst = join(dir, 'node-b', 'img', 'disk-stale');
    mkdirSync(src, { recursive: true });
    mkdirSync(dst, { recursive: true });
    writeFileSync(join(src, 'DiskDescriptor.xml'), '<Parallels_disk_image/>\n');
    writeFileSync(join(src, 'root.hds'), randomBytes(3 * CHUNK + 5));
    writeFileSync(join(dst, 'DiskDescriptor.xml'), '<Parallels_disk_image>\n');
    writeFileSync(join(dst, 'root.hds'), Buffer.alloc(3 * CHUNK + 5));
    const bin = join(dir, 'bin-tracker');
    mkdirSync(bin, { recursive: true });
    const said = { file: join(src, 'root.hds'), started: false };
    writeFileSync(join(bin, 'haul-ploop-track'), `#!/bin/sh\necho '${JSON.stringify(said)}'\n`, {
      mode: 0o755,
    });
    if (!b) {
      b = createImageStreamer({
        nc,
        validators,
        cfg: cfg('node-b'),
        log,
        trust: ids.trust('streamer@node-b'),
      });
      await b.start();
    }
    const path = process.env['PATH'];
    process.env['PATH'] = `${bin}:${path ?? ''}`;
    try {
      // When its first pass runs
      const args: StreamArgs = {
        toNode: 'node-b',
        sourceDir: src,
        targetDir: dst,
        priority: 'iteration',
        pass: { index: 0, final: false },
      };
      const cmdId = 'mig-str010:copyLocalDisk:0.0:node-a:streamer:1';
      await intendTransfer('mig-str010', cmdId, args);
      const r = await a.transfer('mig-str010', cmdId, args, log, {});

      // Then the copy is the disk's, byte for byte (before, the stale files' sizes passed for finished ones, and
      // nothing was sent)
      assert.deepEqual(digestTree(dst), digestTree(src));
      assert.equal(r.resumedBytes, 0);
    } finally {
      process.env['PATH'] = path;
    }
  });

  it("rejects a manifest with '../' or an absolute path, writing nothing outside the image dir", async () => {
    const target = join(dir, 'node-b', 'img', 'evil');
    // The offers name node-a's registered data address, so only their manifests are wrong; a refused offer never
    // connects: node-a's data listener must see no connection.
    const reg = await (await openBucket(nc, buckets.streamers)).get('node-a');
    const { dataHost, dataPort } = decodeJson(reg!.value) as { dataHost: string; dataPort: number };
    const connect = { host: dataHost, port: dataPort, token: 'ab'.repeat(16) };
    // Offers of transfers the coordinator intended (into that folder, from node-a): their manifests decide
    const args: StreamArgs = { toNode: 'node-b', sourceDir: '/x', targetDir: target, priority: 'iteration' };
    await intendTransfer('mig-evil01', 'mig-evil01:streamImages:0:1', args);
    await intendTransfer('mig-evil01', 'mig-evil01:streamImages:0:2', args);
    for (const path of ['../../escape.img', '/etc/passwd-haul']) {
      const offer = {
        transferId: 'mig-evil01:streamImages:0:1',
        migrationId: 'mig-evil01',
        fromNode: 'node-a',
        targetDir: target,
        connect,
        manifest: [{ path, kind: 'file', size: 4 }],
      };
      const reply = await offerToB(nc, offer);
      assert.equal(reply.ok, false);
      if ('error' in reply) {
        assert.equal(reply.error.code, 'HAUL_UNSAFE_MANIFEST');
        assert.equal(reply.error.field, 'manifest.0.path');
      }
    }
    const link = {
      transferId: 'mig-evil01:streamImages:0:2',
      migrationId: 'mig-evil01',
      fromNode: 'node-a',
      targetDir: target,
      connect,
      manifest: [{ path: 'parent', kind: 'symlink', linkTarget: '../../../../etc' }],
    };
    const r2 = await offerToB(nc, link);
    assert.equal('error' in r2 && r2.error.code, 'HAUL_UNSAFE_MANIFEST');
    assert.ok(!existsSync(join(dir, 'escape.img')) && !existsSync(target));
    assert.equal(a.dataSockets(), 0, 'a refused offer opens no data connection');
    assert.equal(b.receiving(), 0);
  });

  it('refuses an offer of a transfer the coordinator did not intend, from a registered streamer: nothing is created', async () => {
    // Given node-a's registered data address, and a folder below node-b's roots that no intent names
    const target = join(dir, 'node-b', 'private', '101', 'root.hdd');
    const offer = await offerFromA(nc, 'mig-nointent1:streamImages:0:1', target, [
      { path: 'root.hds', kind: 'file', size: 4 },
    ]);
    // When node-a offers it (before, it was taken: any streamer could write below another node's roots)
    const reply = await offerToB(nc, offer);
    // Then it is refused, and neither the folder nor a connection came to be
    assert.deepEqual('error' in reply && [reply.error.code, reply.error.field], [
      'HAUL_OFFER_NOT_INTENDED',
      'transferId',
    ]);
    assert.ok(!existsSync(join(dir, 'node-b', 'private')));
    assert.equal(b.receiving(), 0);
  });

  it("refuses an intended transfer's offer in node-a's name unless streamer@node-a signed it: nothing is created", async () => {
    // Given a transfer from node-a to node-b the coordinator intended, into a folder below node-b's roots
    const target = join(dir, 'node-b', 'img', 'forged');
    const args: StreamArgs = { toNode: 'node-b', sourceDir: '/x', targetDir: target, priority: 'iteration' };
    await intendTransfer('mig-forged1', 'mig-forged1:streamImages:0:1', args);
    const offer = await offerFromA(nc, 'mig-forged1:streamImages:0:1', target, [
      { path: 'pages-1.img', kind: 'file', size: 4 },
    ]);
    const refusal = (r: StreamOfferReply) => 'error' in r && [r.error.code, r.error.field];
    // When it comes signed by node-c's streamer, unsigned, or with node-a's signature of other bytes
    assert.deepEqual(refusal(await offerToB(nc, offer, signedBy('node-c', offer))), [
      'HAUL_SIGNER_NOT_ALLOWED',
      'fromNode',
    ]);
    assert.deepEqual(refusal(await offerToB(nc, offer, {})), ['HAUL_UNSIGNED_REQUEST', undefined]);
    const otherBytes = signedBy('node-a', { ...offer, targetDir: '/elsewhere' });
    assert.deepEqual(refusal(await offerToB(nc, offer, otherBytes)), ['HAUL_BAD_SIGNATURE', undefined]);
    // Then each is refused before anything is made (taken before: a node could end another's reception)
    assert.ok(!existsSync(target));
    assert.equal(a.dataSockets(), 0, 'a refused offer opens no data connection');
    assert.equal(b.receiving(), 0);
  });

  it('runs a final-dump transfer at once, ahead of a running pre-dump transfer, which waits for it', async () => {
    const mk = (name: string, mb: number) => {
      const src = join(dir, 'node-a', 'img', name);
      makeTree(src, mb);
      return src;
    };
    const cmd = (id: string, src: string, priority: 'final' | 'iteration', limit?: number) =>
      streamCommand('mig-prio01', id, src, join(dir, 'node-b', 'img', `prio-${id}`), priority, limit);
    // 24 MB at 4 MB/s: six seconds for this test to send the final one while the pre-dump's transfer still runs.
    const slow = cmd('0', mk('prio-iter', 24), 'iteration', 4);
    const fast = cmd('final', mk('prio-final', 4), 'final');
    await send(nc, slow);
    await awaitProgress(nc, 'mig-prio01', (p) => p.commandId === slow.commandId && p.bytesDone > 0, 30_000);
    await send(nc, fast);
    const held = await awaitProgress(
      nc,
      'mig-prio01',
      // (the final one may be done by the time the watch starts: then the report says when the wait ended)
      (p) =>
        p.commandId === slow.commandId && (p.waiting?.reason === 'priority' || p.waitedUntil !== undefined),
      30_000,
    );
    assert.ok(held, 'the pre-dump transfer reported that it waited behind the final one');
    const first = await awaitEvent(
      events,
      'mig-prio01',
      (e) => e.type === 'StepSucceeded' || e.type === 'StepFailed',
      60_000,
    );
    assert.equal(first.type, 'StepSucceeded');
    assert.equal(
      first.type === 'StepSucceeded' && first.data.commandId,
      fast.commandId,
      'the final transfer finished first',
    );
    const done = await awaitEvent(events, 'mig-prio01', outcomeOf(slow.commandId), 60_000);
    assert.equal(done.type, 'StepSucceeded');
    assert.deepEqual(digestTree(slow.args.targetDir), digestTree(slow.args.sourceDir));
    assert.deepEqual(digestTree(fast.args.targetDir), digestTree(fast.args.sourceDir));
  });

  it('resumes from what was verified when the receiving streamer is killed half-way', async () => {
    await b.stop();
    const env = {
      ...process.env,
      HAUL_NODE: 'node-b',
      HAUL_NATS_URL: server.url,
      HAUL_STREAM_ROOTS: join(dir, 'node-b'),
      HAUL_INSECURE: '1',
      HAUL_LOG_LEVEL: 'info',
      ...ids.env('streamer@node-b'),
    };
    let receiver = startService('streamer-b', 'services/image-streamer/src/main.ts', env);
    await receiver.waitForLine(/image streamer started/);
    const src = join(dir, 'node-a', 'img', 'resume');
    makeTree(src, 40);
    const target = join(dir, 'node-b', 'img', 'resume');
    const args: StreamArgs = {
      toNode: 'node-b',
      sourceDir: src,
      targetDir: target,
      priority: 'final',
      bandwidthLimitMBps: 25,
    };
    await intendTransfer('mig-str003', 'mig-str003:streamImages:0:1', args);
    const transfer = a.transfer('mig-str003', 'mig-str003:streamImages:0:1', args, log);
    await awaitProgress(nc, 'mig-str003', (p) => p.bytesDone > 24 * 1024 * 1024, 30_000);
    await receiver.kill('SIGKILL');
    receiver = startService('streamer-b', 'services/image-streamer/src/main.ts', env);
    try {
      const r = await transfer;
      assert.ok((r.resumedBytes ?? 0) > 0, 'resumed from verified bytes, not from zero');
      assert.deepEqual(digestTree(target), digestTree(src));
      assert.ok(
        !readdirSync(join(target, '1')).some((f) => f.includes('haul-part')),
        'no partial files left',
      );
    } finally {
      await receiver.kill();
    }
  });

  it("resumes over a read-back of the part files that outlasts an offer's timeout, reporting that it waits to resume", async () => {
    // Given a receiver (node-d) holding six verified chunks of pages.img in its part file, whose disk reads them
    // back slowly (0.6 s a chunk: 3.6 s in all), and a sender (node-c) that waits 2 s for an offer's answer and
    // offers once (no retry)
    const size = 8 * CHUNK;
    const data = randomBytes(size);
    const src = join(dir, 'node-c', 'img', 'read-back');
    const target = join(dir, 'node-d', 'img', 'read-back');
    mkdirSync(src, { recursive: true });
    mkdirSync(target, { recursive: true });
    writeFileSync(join(src, 'pages.img'), data);
    const part = new PartFile(join(target, 'pages.img'), size, 0o644, 0);
    for (let off = 0; off < 6 * CHUNK; off += CHUNK) {
      const chunk = data.subarray(off, off + CHUNK);
      part.write(off, chunk, chunkDigest(chunk));
    }
    part.close();
    let chunksRead = 0;
    const d = createImageStreamer({
      nc,
      validators,
      cfg: { ...cfg('node-d'), readBackAnswerMs: 200 },
      log,
      trust: ids.trust('streamer@node-d'),
      onReadBack: async () => {
        chunksRead++;
        await delay(600); // a slow disk, not a wait for anything
      },
    });
    const c = createImageStreamer({
      nc,
      validators,
      cfg: { ...cfg('node-c'), maxRetries: 0, offerTimeoutMs: 2_000 },
      log,
      trust: ids.trust('streamer@node-c'),
    });
    await d.start();
    await c.start();
    try {
      // When the transfer is sent
      const args: StreamArgs = { toNode: 'node-d', sourceDir: src, targetDir: target, priority: 'iteration' };
      await intendTransfer('mig-str004', 'mig-str004:streamImages:0:1', args, 'node-c');
      const transfer = c.transfer('mig-str004', 'mig-str004:streamImages:0:1', args, log);
      const readingBack = (p: TransferProgress) => p.waiting?.reason === 'sync' && p.bytesDone < p.bytesTotal;
      const waiting = await awaitProgress(nc, 'mig-str004', readingBack, 30_000);
      const r = await transfer;

      // Then it waited on purpose while the receiver read back (before, its offer timed out: "no streamer
      // answers"), resumed after the six chunks, read back once, and the file arrived whole
      assert.equal(waiting.bytesDone, 0);
      assert.equal(r.resumedBytes, 6 * CHUNK);
      assert.equal(chunksRead, 6);
      assert.ok(readFileSync(join(target, 'pages.img')).equals(data));
      assert.deepEqual(readdirSync(target), ['pages.img']);
    } finally {
      await c.stop();
      await d.stop();
    }
  });
});

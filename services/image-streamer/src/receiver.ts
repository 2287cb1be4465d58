import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  lstatSync,
  writeSync,
  writevSync,
  fdatasyncSync,
  unlinkSync,
  ftruncateSync,
} from 'node:fs';
import { fdatasync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from '@haul/bus';
import type { StreamOffer, StreamOfferReply } from '@haul/schemas';
import { checkManifest, UnsafeManifestError, type ManifestEntry } from './manifest.ts';
import { ByteQueue } from './byte-queue.ts';
import { CHUNK, type FrameHeader } from './wire.ts';

/**
 * Receiving side of one transfer. Each file is written to `<file>.haul-part`; a sidecar `<file>.haul-part.ok`
 * holds how many bytes from the start are verified, so a transfer broken off (either side restarted) resumes from
 * there. A file becomes visible under its name only once every byte was verified.
 */
type FileState = {
  entry: ManifestEntry & { size: number };
  fd: number;
  okFd: number;
  verified: Set<number>;
  prefix: number;
  /** The prefix last recorded in the sidecar, after fdatasync of the part file: what a resume may trust. */
  durable: number;
  syncing: boolean;
  closed: boolean;
};

const DURABLE_EVERY = 16 * 1024 * 1024;
const partOf = (p: string) => `${p}.haul-part`;
const okOf = (p: string) => `${p}.haul-part.ok`;

function readPrefix(path: string): number {
  if (!existsSync(okOf(path)) || !existsSync(partOf(path))) return 0;
  const fd = openSync(okOf(path), 'r');
  const b = Buffer.alloc(8);
  readSync(fd, b, 0, 8, 0);
  closeSync(fd);
  return Math.min(Number(b.readBigUInt64LE(0)), statSync(partOf(path)).size);
}

/** Bytes already verified per file (complete files count fully): the resume point the offer reply carries. */
export function verifiedBytes(offer: StreamOffer): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of offer.manifest) {
    if (e.kind !== 'file') continue;
    const p = join(offer.targetDir, e.path);
    if (existsSync(p) && !existsSync(partOf(p)) && statSync(p).size === e.size) out[e.path] = e.size;
    else out[e.path] = readPrefix(p);
  }
  return out;
}

export type ReceiverOptions = {
  allowedRoots: string[];
  host: string;
  advertise?: string;
  log: Logger;
  acceptTimeoutMs?: number;
};

/** Validate an offer, open a one-time listener and return where to connect. */
export async function acceptOffer(offer: StreamOffer, opts: ReceiverOptions): Promise<StreamOfferReply> {
  try {
    checkManifest(offer.manifest, offer.targetDir, opts.allowedRoots);
  } catch (err) {
    if (err instanceof UnsafeManifestError)
      return { ok: false, error: { code: 'HAUL_UNSAFE_MANIFEST', message: err.message, field: err.field } };
    throw err;
  }
  mkdirSync(offer.targetDir, { recursive: true });
  for (const e of offer.manifest)
    if (e.kind === 'dir') mkdirSync(join(offer.targetDir, e.path), { recursive: true });
  const token = randomBytes(16).toString('hex');
  const verified = verifiedBytes(offer);
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, opts.host, r));
  const port = (server.address() as { port: number }).port;
  const idle = setTimeout(() => server.close(), opts.acceptTimeoutMs ?? 60_000);
  server.on('connection', (sock) => {
    clearTimeout(idle);
    server.close(); // one connection per offer
    serve(sock, token, offer, opts.log);
  });
  return { ok: true, host: opts.advertise ?? opts.host, port, token, verified };
}

function serve(sock: Socket, token: string, offer: StreamOffer, log: Logger): void {
  const files = new Map<string, FileState>();
  const byPath = new Map(
    offer.manifest
      .filter((e) => e.kind === 'file')
      .map((e) => [e.path, e as ManifestEntry & { size: number }]),
  );
  let authed = false;
  const q = new ByteQueue();
  const reply = (line: string) => sock.write(`${line}\n`);
  const fail = (why: string) => {
    log.warn({ transferId: offer.transferId, why }, 'transfer refused');
    reply(`error ${why}`);
    sock.end();
  };
  const open = (path: string): FileState => {
    let st = files.get(path);
    if (st) return st;
    const entry = byPath.get(path)!;
    const p = join(offer.targetDir, path);
    mkdirSync(dirname(p), { recursive: true });
    const prefix = readPrefix(p);
    if (prefix === 0) rmSync(partOf(p), { force: true });
    const fd = openSync(partOf(p), existsSync(partOf(p)) ? 'r+' : 'w+', entry.mode ?? 0o644);
    const okFd = openSync(okOf(p), existsSync(okOf(p)) ? 'r+' : 'w+');
    st = { entry, fd, okFd, verified: new Set(), prefix, durable: prefix, syncing: false, closed: false };
    files.set(path, st);
    return st;
  };
  const advance = (st: FileState) => {
    while (st.verified.has(st.prefix)) {
      st.verified.delete(st.prefix);
      st.prefix = Math.min(st.entry.size, st.prefix + CHUNK);
    }
    // The sidecar only ever claims bytes that are on disk: an fdatasync (off the event loop) comes first, every
    // 16 MiB, so a resume after a crash of the machine (not only of the process) never trusts lost page-cache data.
    if (st.prefix - st.durable >= DURABLE_EVERY && !st.syncing) {
      const target = st.prefix;
      const s = st;
      s.syncing = true;
      fdatasync(s.fd, (err) => {
        s.syncing = false;
        if (err || s.closed) return;
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(BigInt(target));
        writeSync(s.okFd, b, 0, 8, 0);
        s.durable = target;
      });
    }
  };
  const finish = () => {
    for (const e of offer.manifest) {
      const p = join(offer.targetDir, e.path);
      if (e.kind === 'file') {
        const st = files.get(e.path);
        if (st) {
          ftruncateSync(st.fd, e.size ?? 0);
          fdatasyncSync(st.fd);
          st.closed = true;
          closeSync(st.fd);
          closeSync(st.okFd);
          files.delete(e.path);
          if (st.prefix < (e.size ?? 0))
            return fail(`${e.path}: only ${st.prefix} of ${e.size} bytes verified`);
          renameSync(partOf(p), p);
          unlinkSync(okOf(p));
        } else if (existsSync(p) && !existsSync(partOf(p)) && statSync(p).size === e.size) {
          continue;
        } else if ((e.size ?? 0) === 0) {
          closeSync(openSync(p, 'w', e.mode ?? 0o644));
        } else return fail(`${e.path}: never received`);
      } else if (e.kind === 'symlink') {
        let isLink = false;
        try {
          isLink = lstatSync(p).isSymbolicLink();
        } catch {
          isLink = false;
        }
        if (isLink) unlinkSync(p);
        symlinkSync(e.linkTarget!, p);
      }
    }
    reply('done');
    sock.end();
  };
  let header: FrameHeader | undefined;
  sock.on('data', (d: Buffer) => {
    q.push(d);
    for (;;) {
      if (!authed) {
        if (q.length < token.length + 1) return;
        if (q.take(token.length + 1).toString() !== `${token}\n`) return fail('bad token');
        authed = true;
        continue;
      }
      if (!header) {
        if (q.length < 4) return;
        const hl = q.peek(4).readUInt32BE(0);
        if (hl > 64 * 1024) return fail('header too large');
        if (q.length < 4 + hl) return;
        q.take(4);
        header = JSON.parse(q.take(hl).toString()) as FrameHeader;
      }
      const h = header;
      if (h.t === 'end') {
        header = undefined;
        return finish();
      }
      if (q.length < h.len) return;
      const parts = q.takeParts(h.len);
      header = undefined;
      const entry = byPath.get(h.path);
      if (!entry || h.offset % CHUNK !== 0 || h.len > CHUNK || h.offset + h.len > entry.size)
        return fail(`chunk outside the manifest: ${h.path}@${h.offset}`);
      const hash = createHash('sha256');
      for (const p of parts) hash.update(p);
      if (hash.digest('hex') !== h.sha256) {
        reply(`bad ${h.id}`);
        continue;
      }
      const st = open(h.path);
      writevSync(st.fd, parts, h.offset);
      if (h.offset >= st.prefix) {
        st.verified.add(h.offset);
        advance(st);
      }
      reply(`ok ${h.id}`);
    }
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    for (const st of files.values()) {
      st.closed = true;
      closeSync(st.fd);
      closeSync(st.okFd);
    }
    files.clear();
  });
}

export type { Server };

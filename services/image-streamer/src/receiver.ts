import { closeSync, fsyncSync, lstatSync, openSync, symlinkSync, unlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { dirname, join, relative } from 'node:path';
import type { Logger } from '@haul/bus';
import type { StreamOffer, StreamOfferReply } from '@haul/schemas';
import { checkManifest, UnsafeManifestError, type ManifestEntry } from './manifest.ts';
import { FrameReader, type ChunkFrame } from './frame-reader.ts';
import { createEmptyFile, mkdirsNoFollow, noFollow } from './confine.ts';
import { isFinished, PartFile, verifiedPrefix } from './part-file.ts';
import { CHUNK, chunkDigest } from './wire.ts';

/** Bytes already here and verified per file (finished files count fully): the resume point the offer reply carries. */
export function verifiedBytes(offer: StreamOffer): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of offer.manifest)
    if (e.kind === 'file') out[e.path] = verifiedPrefix(join(offer.targetDir, e.path), e.size ?? 0);
  return out;
}

export type ReceiverOptions = {
  allowedRoots: string[];
  log: Logger;
};

/**
 * Validate an offer and answer with how much of each file is already verified; then connect to the sender's
 * one-time listener and receive. Nothing is created before the manifest passed its checks.
 */
export function acceptOffer(received: StreamOffer, opts: ReceiverOptions): StreamOfferReply {
  let confined: { root: string; dir: string };
  try {
    confined = checkManifest(received.manifest, received.targetDir, opts.allowedRoots);
  } catch (err) {
    if (err instanceof UnsafeManifestError)
      return { ok: false, error: { code: 'HAUL_UNSAFE_MANIFEST', message: err.message, field: err.field } };
    throw err;
  }
  // From here on every path is built on the physical folder the checks walked (the root's real path).
  const offer = { ...received, targetDir: confined.dir };
  mkdirsNoFollow(confined.root, relative(confined.root, confined.dir));
  for (const e of offer.manifest) if (e.kind === 'dir') mkdirsNoFollow(offer.targetDir, e.path);
  const verified = verifiedBytes(offer);
  setImmediate(() => receive(offer, verified, opts.log));
  return { ok: true, verified };
}

/** Create a manifest's link, replacing a link (never anything else) already at its path. */
function placeLink(dir: string, e: ManifestEntry): void {
  mkdirsNoFollow(dir, dirname(e.path));
  const p = join(dir, e.path);
  let isLink = false;
  try {
    isLink = lstatSync(p).isSymbolicLink();
  } catch {
    isLink = false;
  }
  if (isLink) unlinkSync(p);
  symlinkSync(e.linkTarget!, p);
}

/** fsync a folder, so the renames in it survive a crash of the machine. */
function syncDir(dir: string): void {
  const fd = openSync(dir, noFollow.read);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Chunk payloads handed out and not yet written (writes are synchronous, so this is only a guard). */
const MAX_IN_FLIGHT = 4;

function receive(offer: StreamOffer, verified: Record<string, number>, log: Logger): void {
  const files = new Map<string, PartFile>();
  const byPath = new Map(
    offer.manifest
      .filter((e) => e.kind === 'file')
      .map((e) => [e.path, e as ManifestEntry & { size: number }]),
  );
  let failed = false;
  const reply = (line: string) => sock.write(`${line}\n`);
  const fail = (why: string) => {
    if (failed) return;
    failed = true;
    reader.stop();
    log.warn({ transferId: offer.transferId, why }, 'transfer refused');
    reply(`error ${why}`);
    sock.end();
  };
  const open = (entry: ManifestEntry & { size: number }): PartFile => {
    let f = files.get(entry.path);
    if (f) return f;
    const p = join(offer.targetDir, entry.path);
    mkdirsNoFollow(offer.targetDir, dirname(entry.path));
    f = new PartFile(p, entry.size, entry.mode ?? 0o644, verified[entry.path] ?? 0);
    files.set(entry.path, f);
    return f;
  };
  const finish = () => {
    if (failed) return;
    const durable = offer.durable === true;
    const dirs = new Set<string>([dirname(offer.targetDir), offer.targetDir]);
    for (const e of offer.manifest) {
      const p = join(offer.targetDir, e.path);
      dirs.add(dirname(p));
      if (e.kind === 'file') {
        const size = e.size ?? 0;
        const f = files.get(e.path);
        if (f) {
          files.delete(e.path);
          if (!f.complete) {
            f.close();
            return fail(`${e.path}: only ${f.prefix} of ${size} bytes verified`);
          }
          f.finish(durable);
        } else if (isFinished(p, size)) {
          continue;
        } else if (size === 0) {
          mkdirsNoFollow(offer.targetDir, dirname(e.path));
          createEmptyFile(p, e.mode ?? 0o644);
        } else return fail(`${e.path}: never received`);
      }
    }
    // Links last, once nothing more is written below the target folder: no write ever goes through one.
    for (const e of offer.manifest) if (e.kind === 'symlink') placeLink(offer.targetDir, e);
    if (durable) for (const d of dirs) syncDir(d);
    reply('done');
    sock.end();
  };
  const chunk = ({ header: h, payload, release }: ChunkFrame) => {
    if (failed) return release();
    const entry = byPath.get(h.path);
    if (
      !entry ||
      h.offset % CHUNK !== 0 ||
      h.offset >= entry.size ||
      h.len !== Math.min(CHUNK, entry.size - h.offset)
    ) {
      release();
      return fail(`chunk outside the manifest: ${h.path}@${h.offset}`);
    }
    const digest = chunkDigest(payload);
    if (digest !== h.crc32) {
      release();
      return reply(`bad ${h.id}`);
    }
    try {
      open(entry).write(h.offset, payload, digest);
    } catch (err) {
      return fail(`cannot write ${h.path}: ${(err as Error).message}`);
    } finally {
      release();
    }
    reply(`ok ${h.id}`);
  };
  const reader = new FrameReader(
    MAX_IN_FLIGHT,
    {
      chunk,
      end: () => {
        try {
          finish();
        } catch (err) {
          fail(`cannot finish: ${(err as Error).message}`);
        }
      },
      error: fail,
    },
    () => sock.resume(),
  );
  const sock: Socket = connect({
    host: offer.connect.host,
    port: offer.connect.port,
    onread: {
      buffer: () => reader.nextBuffer(),
      callback: (n: number) => reader.received(n),
    },
  });
  sock.setNoDelay(true);
  sock.once('connect', () => reply(offer.connect.token));
  sock.on('error', (err) =>
    log.warn({ transferId: offer.transferId, err: err.message }, 'data connection lost'),
  );
  sock.on('close', () => {
    reader.stop();
    for (const f of files.values()) f.close();
    files.clear();
  });
}

import { crc32 } from 'node:zlib';

/**
 * The data connection between two streamers. The receiving side connects to the one-time listener named in the
 * offer and writes the offer's token as its first line; then the sender writes frames:
 *   [u32 BE header length][header JSON][payload][u32 BE CRC-32 of the payload]
 * header: {t:'chunk', id, path, offset, len} (the payload's `len` bytes and a CRC-32 trailer follow) | {t:'end'}.
 * The CRC comes after the payload so that the sender reads, checksums and sends each piece of a chunk in one pass
 * while it is in the CPU's cache. The receiver answers lines:
 *   "ok <id>" (chunk verified and written), "bad <id>" (digest mismatch: send again), "done" / "error <text>".
 */
export const CHUNK = 1024 * 1024;
export const MAX_HEADER = 64 * 1024;
/** The CRC-32 after a chunk's payload. */
export const TRAILER = 4;

export type FrameHeader =
  { t: 'chunk'; id: number; path: string; offset: number; len: number } | { t: 'end' };

export function encodeHeader(h: FrameHeader): Buffer {
  const json = Buffer.from(JSON.stringify(h));
  const out = Buffer.allocUnsafe(4 + json.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  return out;
}

/**
 * A chunk's digest: CRC-32 (zlib's; Node's build has no carry-less-multiply variant, so ≈ 6 GB/s per core on a quiet
 * machine, ≈ 3 GB/s on a busy one, against ≈ 2 GB/s for SHA-256). It guards against accidental corruption and
 * truncation; the channel's authenticity comes from the one-time token, and no unkeyed digest (SHA-256 included)
 * would stop an attacker who can rewrite the stream. `previous`: the digest of the bytes before `data`, to checksum
 * a chunk piece by piece. See docs/decisions.md §8.
 */
export function chunkDigest(data: Uint8Array, previous = 0): number {
  return crc32(data, previous);
}

import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import type * as NodeRsCrc32 from '@node-rs/crc32';

/**
 * The data connection between two streamers. The receiving side connects to the one-time listener named in the
 * offer and writes the offer's token as its first line; then the sender writes frames:
 *   [u32 BE header length][header JSON][payload]
 * header: {t:'chunk', id, path, offset, len, crc32, hcrc} | {t:'wait'} | {t:'end'}. `crc32` is the payload's
 * digest, `hcrc` the header's own (chunkHeader). 'wait' carries nothing: the sender
 * writes it while its own bandwidth limit or a higher-priority transfer holds it back, so that the receiver's idle
 * timeout (limits.streamIdleMs) only closes connections whose peer stopped. The receiver answers lines:
 *   "ok <id>" (chunk verified and written), "bad <id>" (digest mismatch: send again), "done" / "error <text>",
 *   and "wait" while it finishes after the sender's end (its syncs), for the same reason: a sender takes any line it
 *   does not know for nothing, so an older one only sees the connection move.
 */
export const CHUNK = 1024 * 1024;
export const MAX_HEADER = 64 * 1024;

export type FrameHeader =
  | { t: 'chunk'; id: number; path: string; offset: number; len: number; crc32: number; hcrc?: number }
  | { t: 'wait' }
  | { t: 'end' };

type ChunkHeader = Extract<FrameHeader, { t: 'chunk' }>;

/**
 * A whole number from 0 up, exactly representable: what a chunk header's offset and id, and the tracking helper's
 * extents, must be (JSON from another process: a negative offset makes writeSync write at the file's position).
 */
export const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

export function encodeHeader(h: FrameHeader): Buffer {
  const json = Buffer.from(JSON.stringify(h));
  const out = Buffer.allocUnsafe(4 + json.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  return out;
}

type Crc32 = (data: Buffer) => number;
type Loaded = { impl: '@node-rs/crc32'; crc32: Crc32 } | { impl: 'zlib'; crc32: Crc32; why: string };

/**
 * zlib's CRC-32, which Node has from 20.15 (and 22.2) on; undefined on an older Node 20. Read off the module, not
 * imported by name: a named import that Node lacks fails the whole bundle at link time with a SyntaxError that names
 * neither the streamer nor the fix, even where @node-rs/crc32 would have done.
 */
const zlibCrc32 = (zlib as { crc32?: Crc32 }).crc32;

/**
 * CRC-32 (the IEEE polynomial, zlib's) with carry-less multiply when this host has a prebuilt `@node-rs/crc32`
 * binary (x86-64 and arm64 Linux, glibc ≥ 2.14 or musl): ≈ 10 GB/s on one core here against ≈ 4 GB/s for Node 20's
 * zlib, which has only the table-driven code. Both compute the same value, so the wire, the `.haul-sums` files and a
 * streamer of either kind agree; a host where it does not load (no binary for its platform, a binary the loader
 * refuses) uses zlib's, costs more CPU, and says why (`why`, logged by the streamer at start). With neither (a Node
 * before 20.15 without the binary) the streamer cannot start, and says what it needs.
 */
export function loadCrc32(
  load: (id: string) => unknown = createRequire(import.meta.url),
  /** zlib's, or null where this Node has none. */
  fallback: Crc32 | null = zlibCrc32 ?? null,
): Loaded {
  try {
    const fast = load('@node-rs/crc32') as typeof NodeRsCrc32;
    return { impl: '@node-rs/crc32', crc32: fast.crc32 };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = `${e.code ?? 'error'}: ${e.message}`;
    if (!fallback)
      throw new Error(
        `no CRC-32 for the chunks: @node-rs/crc32 did not load (${why}), and Node ${process.version} has no zlib.crc32 (Node 20.15 or later has it)`,
      );
    return { impl: 'zlib', crc32: fallback, why };
  }
}

/** The CRC-32 code this process runs (the streamer logs it when it starts). */
export const crc32Loaded = loadCrc32();
const crc32 = crc32Loaded.crc32;

/**
 * A chunk's digest: CRC-32 (see loadCrc32; SHA-256 ≈ 2 GB/s here). It guards against accidental corruption and
 * truncation; the channel's authenticity comes from the one-time token and mutual TLS, and no unkeyed digest
 * (SHA-256 included) would stop an attacker who can rewrite the stream (docs/decisions.md §8).
 */
export function chunkDigest(data: Buffer): number {
  return crc32(data);
}

/**
 * A chunk's header as a sender writes it: with `hcrc`, the CRC-32 of its other fields (headerDigest). The payload's
 * digest does not say where the payload goes: on a plaintext connection (HAUL_INSECURE=1; TLS's record MAC covers
 * every byte otherwise), a bit flip TCP's 16-bit checksum missed in a header's offset wrote an intact chunk at
 * another place of a disk image, or a flip in its length misframed the rest of the connection.
 */
export function chunkHeader(h: Omit<ChunkHeader, 't' | 'hcrc'>): ChunkHeader {
  const header: ChunkHeader = { t: 'chunk', ...h };
  return { ...header, hcrc: headerDigest(header) };
}

/** CRC-32 of a chunk header's fields but `hcrc`, as the JSON of [id, path, offset, len, crc32]. */
export function headerDigest(h: ChunkHeader): number {
  return crc32(Buffer.from(JSON.stringify([h.id, h.path, h.offset, h.len, h.crc32])));
}

/**
 * Whether a chunk header arrived as it was sent: its `hcrc` matches its fields. A header without one is an older
 * sender's, taken on its payload's digest alone (the receiver checks where a chunk goes against its manifest too).
 */
export const headerIntact = (h: ChunkHeader): boolean => h.hcrc === undefined || h.hcrc === headerDigest(h);

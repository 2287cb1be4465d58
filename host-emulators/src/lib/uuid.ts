import { closeSync, openSync, readSync } from 'node:fs';

/**
 * A random (version 4, DCE variant) UUID in lower case, made as ploop makes its snapshot and delta names: 16 bytes
 * read from /dev/urandom, the version and variant bits set, printed `%08x-%04x-%04x-%02x%02x-…` (ploop lib/uuid.c
 * uuid_new and uuid2str, OpenVZ/ploop v7.0.280 (e49c878), the same at d5c202b; libuuid's uuid_generate, which vzctl
 * calls, makes the same kind).
 * Not `crypto.randomUUID`: loading `node:crypto` and the stream modules it pulls in cost a `ploop snapshot`, which
 * needs nothing else of it, 8.8 ms of CPU (docs/decisions.md 9).
 */
export function randomUuid(): string {
  const b = Buffer.alloc(16);
  const fd = openSync('/dev/urandom', 'r');
  try {
    if (readSync(fd, b, 0, 16, null) !== 16) throw new Error('/dev/urandom: short read');
  } finally {
    closeSync(fd);
  }
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';

/** Write a file the way ploop stores a descriptor: `<file>.tmp`, fsync, rename over the original. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

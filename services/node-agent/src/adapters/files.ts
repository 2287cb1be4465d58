import {
  closeSync,
  constants,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  watch,
  writeSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';

/** Resolve when `dir/name` exists, by watching the folder (no polling); reject on abort. */
export function waitForFile(dir: string, name: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (existsSync(join(dir, name))) return resolve();
    const w = watch(dir, () => {
      if (existsSync(join(dir, name))) done(resolve);
    });
    const onAbort = () => done(() => reject(new Error('aborted')));
    const done = (f: () => void) => {
      w.close();
      signal?.removeEventListener('abort', onAbort);
      f();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // The file may have appeared between the check and the watch.
    if (existsSync(join(dir, name))) done(resolve);
  });
}

/**
 * Write a file the agent makes itself, never through a symlink: what a lost run left is removed (rm unlinks a link),
 * and O_CREAT|O_EXCL|O_NOFOLLOW fails on anything put in its place meanwhile instead of following it.
 */
export function writeNew(path: string, body: string, mode: number): void {
  rmSync(path, { force: true });
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    writeSync(fd, body);
  } finally {
    closeSync(fd);
  }
}

/** Write a file whole: a fresh temporary (writeNew), renamed over the old one. */
export function replaceFile(path: string, body: string, mode: number): void {
  const tmp = `${path}.haul-tmp`;
  writeNew(tmp, body, mode);
  renameSync(tmp, path);
}

/** Total bytes of the regular files in a folder (not following links). */
export function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { withFileTypes: true }))
    if (f.isFile()) n += statSync(join(dir, f.name)).size;
  return n;
}

/** What is at `p` itself (a symlink is not followed); undefined when nothing can be there (ENOENT, ENOTDIR). */
export function entryAt(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/** The path with every link resolved; as it is when it cannot be (gone already, say). */
export function realPathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

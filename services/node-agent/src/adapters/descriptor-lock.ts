import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';

/** ploop's lock timeout (ploop lib/lock.c LOCK_TIMEOUT), also ours for the descriptor lock. */
export const descriptorLockTimeoutS = 60;

/** The descriptor lock could not be had: someone (ploop, an admin) holds it longer than ploop itself would wait. */
export class DescriptorLockedError extends Error {
  readonly file: string;
  constructor(file: string) {
    super(`${file} is locked: not had within ${descriptorLockTimeoutS} s`);
    this.name = 'DescriptorLockedError';
    this.file = file;
  }
}

/** flock(1)'s argv: hold `file` exclusively (waiting as long as ploop would) while `holder` runs. */
export const descriptorLockArgv = (file: string, holder: string): string[] => [
  '--exclusive',
  '--timeout',
  String(descriptorLockTimeoutS),
  file,
  'sh',
  '-c',
  holder,
];

/**
 * Run `fn` holding a ploop descriptor's lock: flock(2) of `<realpath of DiskDescriptor.xml>.lck`, the file every
 * ploop 7 operation that changes the image set locks (lib/lock.c ploop_lock_di → get_disk_descriptor_lock_fname, at
 * v7.0.280). ploop 9 locks the base image itself instead, with fcntl(2) record locks (lib/lock.c ploop_lock_di, at
 * d5c202b), which this lock does not exclude: on a ploop 9 host it guards against haul's own agents only. Node has no
 * flock, so util-linux flock(1) holds it for us — `flock --exclusive --timeout 60 FILE sh -c 'echo locked; exec cat'`
 * — and keeps it until its stdin closes: when `fn` ends, or when the agent dies.
 */
export async function withDescriptorLock<T>(ddxml: string, fn: () => T | Promise<T>): Promise<T> {
  const file = `${realpathSync(ddxml)}.lck`;
  const child = spawn('flock', descriptorLockArgv(file, 'echo locked; exec cat >/dev/null'), {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? -1));
  });
  const locked = new Promise<boolean>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('locked')) resolve(true);
    });
    void exited.then(
      () => resolve(false),
      () => resolve(false),
    );
  });
  try {
    if (!(await locked)) throw new DescriptorLockedError(file);
    return await fn();
  } finally {
    child.stdin.end();
    await exited.catch(() => undefined);
  }
}

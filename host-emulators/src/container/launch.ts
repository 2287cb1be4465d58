import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { paths, type EmuEnv } from '../lib/emu-env.ts';
import { emulatorBinDir } from '../paths.ts';
import type { CtConfig } from './protocol.ts';
import { childProcess } from '../lib/lazy.ts';

const initBin = join(emulatorBinDir, 'haul-ct-init');

/**
 * The CT's memory on transparent huge pages, as a CT's anonymous memory is on a VZ host: its kernel is built from
 * RHEL's, which turns THP on for every process by default (Red Hat solution 46111). The emulated CT holds its memory in one malloc'd buffer; glibc's `hugetlb=1` tunable
 * (glibc ≥ 2.35; older ones ignore it) makes malloc advise MADV_HUGEPAGE on its mmap'd chunks, which a kernel in THP
 * `madvise` mode (this project's test machines) honours. It changes no byte of the CT's memory, only how many page
 * faults fill it: on a VM each 4 KiB fault also costs the hypervisor one, and a restored 256 MiB CT read its images
 * in 0.75 s on 4 KiB pages against 0.47 s on 2 MiB ones (alone; 1.25 s and 0.48 s inside the demo's restore).
 */
export function withHugePages(tunables: string | undefined): string {
  const own = 'glibc.malloc.hugetlb=1';
  const rest = (tunables ?? '').split(':').filter((t) => t !== '' && !t.startsWith('glibc.malloc.hugetlb='));
  return [...rest, own].join(':');
}

/**
 * Start the CT's init as a detached process (it outlives the tool that started it, as a real CT does) and wait
 * until it answers on its socket. Rejects with the init's own error when it fails to come up.
 */
export function launchContainer(env: EmuEnv, config: CtConfig, restoreDir?: string): Promise<number> {
  const socket = paths.ctSocket(env, config.ctid);
  mkdirSync(dirname(socket), { recursive: true });
  const logFile = join(env.root, 'var', 'log', `ct-${config.ctid}.log`);
  mkdirSync(dirname(logFile), { recursive: true });
  const log = openSync(logFile, 'a');
  const arg = JSON.stringify({ config, socket, readyFd: 3, ...(restoreDir ? { restoreDir } : {}) });
  const child = childProcess().spawn(process.execPath, [initBin, arg], {
    detached: true,
    stdio: ['ignore', log, log, 'pipe'],
    env: {
      ...process.env,
      HAUL_EMU_ROOT: env.root,
      HAUL_EMU_FAULTS: '',
      GLIBC_TUNABLES: withHugePages(process.env['GLIBC_TUNABLES']),
    },
  });
  closeSync(log);
  return new Promise((resolve, reject) => {
    const ready = child.stdio[3] as Readable;
    ready.on('data', (d: Buffer) => {
      if (d.toString().startsWith('ready')) {
        ready.destroy();
        child.unref();
        resolve(child.pid!);
      }
    });
    child.once('exit', (code) => {
      const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
      reject(new Error(`CT init exited with ${code}: ${tail}`));
    });
  });
}

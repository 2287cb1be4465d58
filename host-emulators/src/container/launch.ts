import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { paths, type EmuEnv } from '../lib/emu-env.ts';
import { emulatorBinDir } from '../paths.ts';
import type { CtConfig } from './protocol.ts';

const initBin = join(emulatorBinDir, 'haul-ct-init');

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
  const child = spawn(process.execPath, [initBin, arg], {
    detached: true,
    stdio: ['ignore', log, log, 'pipe'],
    env: { ...process.env, HAUL_EMU_ROOT: env.root, HAUL_EMU_FAULTS: '' },
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

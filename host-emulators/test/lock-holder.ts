import { spawn } from 'node:child_process';
import type { EmulatedCluster } from '@haul/test';

/**
 * Run `during` while `haul-emu hold-lock` holds a descriptor's lock on `node` (taken once it says so, never after a
 * fixed time), then let the lock go and wait for the holder to end; what `during` returned.
 */
export async function whileLockHeld<T>(
  c: EmulatedCluster,
  node: string,
  dd: string,
  during: () => Promise<T>,
): Promise<T> {
  const holder = spawn('haul-emu', ['hold-lock', dd], {
    env: c.envFor(node),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((r) => holder.stdout.once('data', () => r()));
  try {
    return await during();
  } finally {
    holder.kill('SIGTERM');
    await new Promise((r) => holder.once('exit', r));
  }
}

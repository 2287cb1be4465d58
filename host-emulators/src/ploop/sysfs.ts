import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { EmuEnv } from '../lib/emu-env.ts';

/**
 * The block devices of a node as its sysfs shows them: `/sys/class/block/<name>/dev` holds `major:minor`. ploop's
 * kernel driver has major 182 and 16 minors per device (PLOOP_PART_SHIFT 4): /dev/ploopN is 182:N·16, its first
 * partition /dev/ploopNp1 182:N·16+1 — the partition P.Haul passes as `minor + 1` (p_haul_vz.py line 170).
 */
export const ploopMajor = 182;

const sysBlock = (env: EmuEnv, name: string) => join(env.root, 'sys', 'class', 'block', name);

export function partitionDevNumber(dev: string): { major: number; minor: number } {
  const n = Number(/ploop(\d+)$/.exec(dev)?.[1]);
  return { major: ploopMajor, minor: n * 16 + 1 };
}

/** A device was attached on this node: its entry and its partition's appear in sysfs. */
export function exposeDevice(env: EmuEnv, dev: string): void {
  const n = Number(/ploop(\d+)$/.exec(dev)?.[1]);
  for (const [name, minor] of [
    [basename(dev), n * 16],
    [`${basename(dev)}p1`, n * 16 + 1],
  ] as const) {
    mkdirSync(sysBlock(env, name), { recursive: true });
    writeFileSync(join(sysBlock(env, name), 'dev'), `${ploopMajor}:${minor}\n`);
  }
}

export function hideDevice(env: EmuEnv, dev: string): void {
  for (const name of [basename(dev), `${basename(dev)}p1`])
    rmSync(sysBlock(env, name), { recursive: true, force: true });
  rmSync(join(env.root, 'sys', 'block', basename(dev)), { recursive: true, force: true });
}

/**
 * The deltas a device opens, as ploop 7's driver shows them: `/sys/block/<ploopN>/pdelta/<level>/image`, level 0 the
 * base, the highest the top (ploop lib/delta_sysfs.c find_delta_info, at v7.0.280). Written whole each time the
 * device's chain changes (attach, online snapshot, online merge).
 */
export function exposeDeltas(env: EmuEnv, dev: string, deltas: readonly string[]): void {
  const dir = join(env.root, 'sys', 'block', basename(dev), 'pdelta');
  rmSync(dir, { recursive: true, force: true });
  deltas.forEach((d, level) => {
    mkdirSync(join(dir, String(level)), { recursive: true });
    writeFileSync(join(dir, String(level), 'image'), `${d}\n`);
  });
}

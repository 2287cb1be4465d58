import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { realPathOr } from './files.ts';
import { basename } from 'node:path';

/**
 * The deltas a ploop device opens, base first, as ploop 7's driver shows them in sysfs:
 * `/sys/block/<ploopN>/pdelta/<level>/image`, level 0 the base and the highest the top (ploop lib/delta_sysfs.c
 * find_delta_info, at v7.0.280). Undefined when the host shows none: ploop 9's devices are device-mapper targets,
 * without pdelta.
 */
export function deviceDeltas(hostRoot: string, device: string): string[] | undefined {
  const dir = `${hostRoot}/sys/block/${basename(device)}/pdelta`;
  if (!existsSync(dir)) return undefined;
  const out: string[] = [];
  for (let level = 0; ; level++) {
    try {
      out.push(readFileSync(`${dir}/${level}/image`, 'utf8').trim());
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw err;
    }
  }
}

/**
 * Every delta a ploop device of this host opens, by its real path, with the device: none known where the host does not
 * show them (ploop 9).
 */
export function openedDeltas(hostRoot: string): Map<string, string> {
  let names: string[];
  try {
    names = readdirSync(`${hostRoot}/sys/block`).filter((n) => /^ploop\d+$/.test(n));
  } catch {
    return new Map();
  }
  return new Map(
    names.flatMap((n) =>
      (deviceDeltas(hostRoot, `/dev/${n}`) ?? []).map((d) => [realPathOr(d), `/dev/${n}`] as const),
    ),
  );
}

import { lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ToolExit } from '../lib/emu-env.ts';

/*
 * A CT private area's layout version, as libvzctl keeps it (OpenVZ/libvzctl@ebbfc38): the link `$VE_PRIVATE/.ve.layout`
 * to the version's digits ("5" for a ploop CT, VZ7's only kind; "4" a VZFS one). Every use of a CT reads it: the
 * mount takes the ploop path from 5 on and bind-mounts the private area below it (lib/fs.c do_env_mount 196–202),
 * and a registration refuses anything below 4 (lib/vz.c vzctl2_env_register 906–911). A migration's target therefore
 * needs it in the private area before its restore, as vzmigrate's copy of a whole private area brings it.
 */

export const layoutLink = (vePrivate: string): string => join(vePrivate, '.ve.layout');

/** The layout version of a ploop CT, the only kind the emulators run. */
export const ploopLayout = 5;

/**
 * vzctl2_env_layout_version (lib/vz.c 521–554): 0 without the link (or when it is not a link), the number its target
 * starts with as sscanf's "%d" reads it, or -1 (here: refused, exit 255) for a link that cannot be read or holds no
 * number.
 */
export function layoutVersion(path: string): number {
  const link = layoutLink(path);
  let isLink: boolean;
  try {
    isLink = lstatSync(link).isSymbolicLink();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return 0;
    throw new ToolExit(255, `Unable to get the Container layout: failed to stat ${link}: ${err.message}`);
  }
  if (!isLink) return 0;
  const ver = readlinkSync(link);
  if (ver.length >= 16) throw new ToolExit(255, `Error reading Ct layout version from ${link}`);
  const n = /^\s*[+-]?\d+/.exec(ver);
  if (!n) throw new ToolExit(255, `Unknown VZFS version (${ver})`);
  return Number.parseInt(n[0], 10);
}

/**
 * A new private area as `vzctl create` makes one for a ploop CT (vzctl2_create_env_private, lib/fs_vzfs.c 132–179,
 * layout 5): fs, root.hdd, dump and scripts, then the layout link.
 */
export function createPrivateArea(vePrivate: string): void {
  for (const d of ['fs', 'root.hdd', 'dump', 'scripts']) mkdirSync(join(vePrivate, d), { recursive: true });
  rmSync(layoutLink(vePrivate), { force: true });
  symlinkSync(String(ploopLayout), layoutLink(vePrivate));
}

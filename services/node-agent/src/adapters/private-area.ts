import { lstatSync, mkdirSync, readdirSync, readlinkSync, rmdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

/*
 * A ploop CT's private area as libvzctl reads it (OpenVZ/libvzctl@ebbfc38). Its layout version is the link
 * `$VE_PRIVATE/.ve.layout` ("5" for a ploop CT, lib/vz.c vzctl2_env_layout_version 521–554), and every use of the CT
 * reads it: the mount takes the ploop path only at 5 and bind-mounts the private area otherwise (lib/fs.c
 * do_env_mount 196–202), and `vzctl register` refuses anything below 4, --force or not (lib/vz.c 906–911). vzmigrate
 * brings it to a target with the rest of the private area (bin/migsrcremote.cpp copy_ct: a tar of the whole folder,
 * the active deltas apart). haul copies a CT's disks only, so the target's private area holds its root disk's folder
 * and nothing else: the target makes the rest of a ploop private area itself before its restore, as
 * `vzctl create` makes a new one (lib/fs_vzfs.c vzctl2_create_env_private 132–179, layout 5) and vzmigrate its own
 * target when it converts one (bin/veentry.cpp VEObj::createLayout).
 */

const layoutLink = (vePrivate: string): string => join(vePrivate, '.ve.layout');

/**
 * The layout version of a private area as vzctl2_env_layout_version reads it: 0 without the link or when it is not a
 * link, else the number its target starts with (sscanf's "%d"); a link that holds none (where libvzctl fails) is 0 here
 * too, no ploop CT's either way.
 */
export function layoutVersion(vePrivate: string): number {
  if (!lstatOrUndefined(layoutLink(vePrivate))?.isSymbolicLink()) return 0;
  const n = /^\s*[+-]?\d+/.exec(readlinkSync(layoutLink(vePrivate)));
  return n ? Math.max(0, Number.parseInt(n[0], 10)) : 0;
}

/** The folders of a layout-5 private area besides the layout link (vzctl2_create_env_private's order). */
const layoutFolders = ['fs', 'root.hdd', 'dump', 'scripts'] as const;

function lstatOrUndefined(p: string) {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Make `vePrivate` a ploop private area where it is not one yet (no layout link): its missing folders, then the link
 * to "5", last, so that a private area with the link is whole. A repeat, or a private area that has its layout
 * already (a private area on shared storage, the source's own), changes nothing. Returns what it did.
 */
export function ensurePloopLayout(vePrivate: string): string[] {
  if (lstatOrUndefined(layoutLink(vePrivate))) return [];
  for (const d of layoutFolders) mkdirSync(join(vePrivate, d), { recursive: true, mode: 0o755 });
  symlinkSync('5', layoutLink(vePrivate));
  return [`${vePrivate} made a ploop private area (.ve.layout → 5, ${layoutFolders.join(', ')})`];
}

/**
 * Remove `dir` when it is a private area that holds nothing of a CT: the layout link and none, some or all of its
 * empty folders, and nothing else (what ensurePloopLayout made on a target whose copied disk a rollback removed). A
 * private area with anything more (a config, a disk, a file in a folder) is left whole. Returns whether it went.
 */
export function removeBarePrivateArea(dir: string): boolean {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  if (!lstatOrUndefined(layoutLink(dir))?.isSymbolicLink()) return false;
  const folders = names.filter((n) => n !== '.ve.layout');
  const bare = folders.every(
    (n) =>
      (layoutFolders as readonly string[]).includes(n) &&
      lstatSync(join(dir, n)).isDirectory() &&
      readdirSync(join(dir, n)).length === 0,
  );
  if (!bare) return false;
  for (const n of folders) rmdirSync(join(dir, n));
  unlinkSync(layoutLink(dir));
  rmdirSync(dir);
  return true;
}

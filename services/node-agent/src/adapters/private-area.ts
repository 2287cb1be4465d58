import { createHash } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  statSync,
  type Stats,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { ploopLayout, unreadableLayout } from '@haul/domain';
import type { ActionScript } from '@haul/schemas';

/*
 * A ploop CT's private area as libvzctl reads it (OpenVZ/libvzctl@ebbfc38). Its layout version is the link
 * `$VE_PRIVATE/.ve.layout` ("5" for a ploop CT, lib/vz.c vzctl2_env_layout_version 521–554), and every use of the CT
 * reads it: the mount takes the ploop path from 5 on and bind-mounts the private area below (lib/fs.c do_env_mount
 * 196–202), and `vzctl register` refuses anything below 4, --force or not (lib/vz.c 906–911). vzmigrate brings it to
 * a target with the rest of a private area that is not shared (bin/migsrcremote.cpp copy_ct 1420–1437: a tar, or an
 * rsync, of the whole folder, the active deltas apart). haul copies a CT's disks only, so the target's private area
 * holds its disks' folders and nothing else: the target makes the rest of a ploop private area itself before its
 * restore, as `vzctl create` makes a new one (lib/fs_vzfs.c vzctl2_create_env_private 132–179, layout 5).
 */

const layoutLink = (vePrivate: string): string => join(vePrivate, '.ve.layout');

/** The folders of a layout-5 private area besides the layout link (vzctl2_create_env_private's order). */
const layoutFolders: readonly string[] = ['fs', 'root.hdd', 'dump', 'scripts'];

/** lstat, or undefined where nothing is (ENOENT only: any other error throws). */
const lstatOrUndefined = (p: string) => lstatSync(p, { throwIfNoEntry: false });

/**
 * The layout version of a private area as vzctl2_env_layout_version reads it: 0 without `.ve.layout`, the number its
 * link holds (sscanf's "%d", up to 1,000,000), or unreadableLayout for a `.ve.layout` that is no link (libvzctl
 * takes it for layout 0, a simfs CT's) or whose link holds no number (where libvzctl fails).
 */
export function layoutVersion(vePrivate: string): number {
  const st = lstatOrUndefined(layoutLink(vePrivate));
  if (!st) return 0;
  if (!st.isSymbolicLink()) return unreadableLayout;
  const n = /^\s*[+-]?\d+/.exec(readlinkSync(layoutLink(vePrivate)));
  const v = n ? Number.parseInt(n[0], 10) : Number.NaN;
  return v >= 0 ? Math.min(v, 1_000_000) : unreadableLayout;
}

/**
 * Make `vePrivate` a ploop private area where it has no `.ve.layout` yet: its missing folders, then the link to "5",
 * last, so that a private area with the link is whole. A repeat, or a private area that has its layout already (on
 * shared storage, say), changes nothing; the caller checks the layout after (a `.ve.layout` of another kind is left
 * as it is). Returns what it did.
 */
export function ensurePloopLayout(vePrivate: string): string[] {
  if (lstatOrUndefined(layoutLink(vePrivate))) return [];
  for (const d of layoutFolders) mkdirSync(join(vePrivate, d), { recursive: true, mode: 0o755 });
  symlinkSync(String(ploopLayout), layoutLink(vePrivate));
  return [`${vePrivate} made a ploop private area (.ve.layout → 5, ${layoutFolders.join(', ')})`];
}

/**
 * Remove the CT's private area `vePrivate` when it holds nothing of the CT: nothing at all, or a layout link and
 * empty layout folders (what the target made before a restore, whose copied disks a rollback removed, or the part of
 * it a crash left), and nothing else. A private area with anything more (a config, a disk, a file in a folder) is left
 * whole. Only ever called with the CT's own VE_PRIVATE. Returns whether it went.
 */
export function removeBarePrivateArea(vePrivate: string): boolean {
  let names: string[];
  try {
    names = readdirSync(vePrivate);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  const link = names.includes('.ve.layout');
  if (link && !lstatSync(layoutLink(vePrivate)).isSymbolicLink()) return false;
  const folders = names.filter((n) => n !== '.ve.layout');
  const bare = folders.every(
    (n) =>
      layoutFolders.includes(n) &&
      lstatSync(join(vePrivate, n)).isDirectory() &&
      readdirSync(join(vePrivate, n)).length === 0,
  );
  if (!bare) return false;
  // The link first: a crash after it leaves empty folders, which a repeat removes as it would have.
  if (link) unlinkSync(layoutLink(vePrivate));
  for (const n of folders) rmdirSync(join(vePrivate, n));
  rmdirSync(vePrivate);
  return true;
}

/**
 * The CT's own action scripts, in the order vzctl could run them: `$VE_PRIVATE/scripts/<name>` for a private area of
 * layout 4 or later (libvzctl lib/util.c get_action_script_path 1348–1355: the mount scripts through
 * run_action_scripts 1388–1412, `start` and `stop` from lib/env.c 1073, 1330 and 286; the names are lib/vztypes.h
 * 71–76), each that vzctl would try to run: stat_file (lib/common.c 148–160) skips a script only when stat says it is
 * not there (a link is followed); any other answer, even an error, makes vzctl run it. A regular file has the SHA-256
 * of its bytes and whether it may be executed (the mount scripts are execv'd); anything else has neither, and equals
 * nothing in the check (checkActionScripts).
 */
export function actionScripts(vePrivate: string): ActionScript[] {
  const found: ActionScript[] = [];
  for (const name of actionScriptNames) {
    const path = join(vePrivate, 'scripts', name);
    let st: Stats;
    try {
      st = statSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      found.push({ name }); // ENOTDIR, EACCES, ELOOP…: vzctl runs it, and fails
      continue;
    }
    if (!st.isFile()) found.push({ name });
    else
      found.push({
        name,
        sha256: createHash('sha256').update(readFileSync(path)).digest('hex'),
        executable: (st.mode & 0o111) !== 0,
      });
  }
  return found;
}

/** The action scripts libvzctl runs from a CT's private area (VZCTL_*_PREFIX). */
const actionScriptNames: readonly ActionScript['name'][] = [
  'premount',
  'mount',
  'start',
  'stop',
  'umount',
  'postumount',
];

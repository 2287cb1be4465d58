import {
  closeSync,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import {
  backupOf,
  parseDescriptorView,
  readDescriptorView,
  TOPDELTA,
  type DescriptorView,
} from './descriptor.ts';
import { realPathOr } from './files.ts';

/*
 * Snapshot deltas of a shared disk that no descriptor names, and the `.tmp` files ploop stores a descriptor through.
 *
 * How ploop adds a delta (lib/snapshot.c do_create_snapshot, ploop 7 at v7.0.280 and ploop 9 at d5c202b; its
 * snapshot-switch, ploop_switch_snapshot_ex, the same way): it names the new delta `<base image>.{<fresh GUID>}`
 * beside the base image (ploop 9 cuts a trailing `.{…}` off the base's name first, get_new_delta_fname); it stores
 * the new descriptor whole as `<descriptor>.tmp` (store_diskdescriptor writes `<descriptor>.tmp.tmp`, syncs it and
 * renames it), with the snapshot's GUID on the old top image and the new delta as the top, child of that GUID; then it
 * creates the delta; an online snapshot then switches the device to it (create_snapshot, which unlinks the delta if
 * the switch fails); then it renames `<descriptor>.tmp` over the descriptor. `<descriptor>` is the real path ploop
 * opened (lib/di.c ploop_open_dd), so a snapshot of the backup copy through its `DiskDescriptor.copy.xml` link stores
 * `DiskDescriptor.xml.copy.tmp`. A merge adds no delta: it stores a descriptor without the merged one, then unlinks it
 * (lib/merge.c). Every other store of a descriptor also goes through `<descriptor>.tmp` (store_diskdescriptor).
 *
 * The sweep: from a delta's creation until its operation ends, `<descriptor>.tmp` or the descriptor names it. So the
 * folder is listed first and the descriptors read after, each `.tmp` before its descriptor: a delta the listing saw is
 * named by the `.tmp` when that is read, or, renamed away since, by the descriptor read after it. Every `.tmp` that is
 * whole XML counts, whoever stored it: this holds whatever lock the other operation took (ploop 7 locks
 * `DiskDescriptor.xml.lck` with flock(2), which the sweep's caller holds too, but ploop 9 locks the base image with
 * fcntl(2) record locks, which that does not exclude). A `.tmp` that is not whole XML may be any store under way: no
 * delta is removed then, and the step says so.
 *
 * A `.tmp` left by a store cut short keeps what it names only until the next store of that descriptor writes over it
 * (every ploop store goes through `<descriptor>.tmp`); one that is not whole XML stops every sweep until then.
 *
 * An online snapshot of someone else's cut short after its device's switch, or one whose last rename fails (ploop
 * unlinks conf_tmp then, not the delta), leaves the delta the device writes named by no file once that `.tmp` is gone:
 * the sweep keeps every delta a device of this host opens, as ploop 7's sysfs shows them (device-chain.ts). Not
 * covered: a device of another host (a shared disk's other node), and ploop 9, whose sysfs does not show them. This
 * migration's own are settled before any sweep (shared-disk.ts settleCutShortStore).
 */

/** What a disk's snapshot deltas are named like: `<base>.{GUID}`, or with a trailing `.{…}` of the base cut off. */
export function deltaPattern(base: string): RegExp {
  const name = basename(base);
  const dot = name.lastIndexOf('.');
  const cut = dot >= 0 && name[dot + 1] === '{' ? name.slice(0, dot) : name;
  const names = [...new Set([name, cut])].map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^(${names.join('|')})\\.\\{[0-9a-fA-F-]{36}\\}$`);
}

/** Which file a read found: a `.tmp` is removed only if the same file is still there. */
type FileId = Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs'>;
const sameFile = (a: FileId, b: FileId): boolean =>
  a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;

/** A descriptor's `.tmp` as read: absent, not whole XML (or unreadable), or a whole descriptor. */
export type StoreTmp =
  | { kind: 'none' }
  | { kind: 'unreadable'; why: string }
  | { kind: 'whole'; view: DescriptorView; id: FileId };

/** The file system calls of the sweep; tests pass their own to run it between the steps of a ploop operation. */
export type SweepIo = {
  list(folder: string): string[];
  /** The file's text and identity; undefined when there is none. */
  read(path: string): { text: string; id: FileId } | undefined;
};

export const fsIo: SweepIo = {
  list: (folder) => readdirSync(folder),
  read(path) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return { id: fstatSync(fd), text: readFileSync(fd, 'utf8') };
    } finally {
      closeSync(fd);
    }
  },
};

/** Read `<descriptor>.tmp` (`tmp`) as the sweep and the rollback read it. */
export function readStoreTmp(tmp: string, io: SweepIo = fsIo): StoreTmp {
  let got: ReturnType<SweepIo['read']>;
  try {
    got = io.read(tmp);
  } catch (err) {
    return { kind: 'unreadable', why: (err as Error).message };
  }
  if (!got) return { kind: 'none' };
  const wellFormed = XMLValidator.validate(got.text);
  if (wellFormed !== true) return { kind: 'unreadable', why: wellFormed.err.msg };
  return { kind: 'whole', view: parseDescriptorView(got.text, tmp), id: got.id };
}

/**
 * The delta a snapshot `guid` made when `tmp` is exactly its store over `before` and it was cut short before its
 * rename: `before` does not name `guid`; `tmp` holds `before`'s images, its top relabeled `guid`, and one image more,
 * the top, child of `guid` (do_create_snapshot). Undefined otherwise: another operation's store (a resize, a later
 * snapshot), or none of this snapshot's.
 */
export function cutShortSnapshot(
  before: DescriptorView,
  tmp: DescriptorView,
  guid: string,
): string | undefined {
  const g = guid.toLowerCase();
  if (before.images.some((i) => i.guid === g)) return undefined;
  const top = tmp.images.at(-1);
  if (!top || top.guid !== TOPDELTA || tmp.images.length !== before.images.length + 1) return undefined;
  const relabeled = before.images.map((i) => (i.guid === TOPDELTA ? { ...i, guid: g } : i));
  const same = relabeled.every((i, k) => tmp.images[k]?.guid === i.guid && tmp.images[k]?.file === i.file);
  const child = tmp.shots.some((s) => s.guid === TOPDELTA && s.parent === g);
  return same && child ? top.file : undefined;
}

/** What a disk's device shows of its top delta: the file, no device opens the disk here, or the host does not show it. */
export type DeviceTop = { file: string } | 'no device' | 'not shown';

/**
 * What is done with a snapshot's store cut short before its rename (cutShortSnapshot's `made`: the delta it made),
 * knowing what the disk's device opens:
 * - undo, as ploop's own failure paths leave it (create_snapshot unlinks the delta, do_create_snapshot the .tmp): the
 *   delta was not made, or the snapshot was offline, or no device opens the disk, or its top is not that delta;
 * - finish, as ploop would have (the .tmp renamed over the descriptor): the device was switched to the delta and
 *   writes it;
 * - unknown: an online snapshot's delta exists and the host does not show the device's deltas: either could be true.
 */
export function settleCutShort(s: {
  online: boolean;
  made: string;
  madeExists: boolean;
  deviceTop: DeviceTop;
}): 'undo' | 'finish' | 'unknown' {
  if (!s.madeExists || !s.online || s.deviceTop === 'no device') return 'undo';
  if (s.deviceTop === 'not shown') return 'unknown';
  return realPathOr(s.deviceTop.file) === realPathOr(s.made) ? 'finish' : 'undo';
}

/**
 * `act` on `tmp` if it is still the file `id` names (another store may have replaced it since it was read); false
 * when it is not, or gone.
 */
function ifStillSame(tmp: string, id: FileId, act: () => void): boolean {
  try {
    if (!sameFile(lstatSync(tmp), id)) return false;
    act();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Remove `tmp` if it is still the file `id` names. */
export const removeIfSame = (tmp: string, id: FileId): boolean => ifStillSame(tmp, id, () => unlinkSync(tmp));

/** Rename `tmp` over `to` if it is still the file `id` names. */
export const renameIfSame = (tmp: string, to: string, id: FileId): boolean =>
  ifStillSame(tmp, id, () => renameSync(tmp, to));

/**
 * Remove the orphan deltas of the disk of `ddxml` (and of its backup copy), saying what it did in `actions`. A delta a
 * device of this host opens (`opened`: real path → device, ploop 7's sysfs) is kept, whatever names it. Throws when
 * the descriptor cannot be read.
 */
export function sweepOrphanDeltas(
  ddxml: string,
  actions: string[],
  {
    opened = () => new Map<string, string>(),
    io = fsIo,
  }: { opened?: () => ReadonlyMap<string, string>; io?: SweepIo } = {},
): void {
  const dd = realPathOr(ddxml);
  // Read once for its base image before the listing, and again below after its .tmp: the order the sweep relies on.
  const base = readDescriptorView(dd).images[0]?.file;
  if (!base) return;
  const folder = realPathOr(dirname(base));
  const pattern = deltaPattern(base);
  const listed = io
    .list(folder)
    .filter((f) => pattern.test(f))
    .map((f) => join(folder, f));
  const named = new Set<string>();
  // The backup copy where the dance makes it, beside the descriptor as the CT's config names it (backupOf).
  for (const descriptor of [dd, realPathOr(backupOf(ddxml))]) {
    const tmp = readStoreTmp(`${descriptor}.tmp`, io);
    if (tmp.kind === 'unreadable') {
      actions.push(`removed no delta: ${basename(descriptor)}.tmp cannot be read whole (${tmp.why})`);
      return;
    }
    const text = io.read(descriptor)?.text;
    const images = [
      ...(tmp.kind === 'whole' ? tmp.view.images : []),
      ...(text === undefined ? [] : parseDescriptorView(text, descriptor).images),
    ];
    for (const i of images) named.add(realPathOr(i.file));
  }
  const unnamed = listed.map((p) => [p, realPathOr(p)] as const).filter(([, real]) => !named.has(real));
  if (unnamed.length === 0) return;
  const open = opened();
  for (const [p, real] of unnamed) {
    const device = open.get(real);
    if (device) {
      actions.push(`kept ${basename(p)}: no descriptor names it, and ${device} opens it`);
      continue;
    }
    unlinkSync(p);
    actions.push(`removed orphan delta ${basename(p)}`);
  }
}

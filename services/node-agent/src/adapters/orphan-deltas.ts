import { readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { backupOf, parseDescriptorView, readDescriptorView } from './descriptor.ts';
import { realPathOr } from './files.ts';

/*
 * Snapshot deltas of a shared disk that no descriptor names: what a crash left between ploop creating a delta and
 * storing the descriptor that names it, or between storing one without it and unlinking it (a merge).
 *
 * How ploop adds a delta (lib/snapshot.c do_create_snapshot, ploop 7 at v7.0.280 and ploop 9 at d5c202b; the
 * snapshot-switch and merge paths store the same way): it names the new delta `<base image>.{<fresh GUID>}`, beside
 * the base image (get_new_delta_fname: the base's name with a trailing `.{…}` cut off); it stores the new
 * descriptor whole as `<descriptor>.tmp` (store_diskdescriptor writes `<descriptor>.tmp.tmp`, syncs it and renames
 * it), with the snapshot's GUID on the old top image and the new delta as the top; then it creates the delta; then it
 * renames `<descriptor>.tmp` over the descriptor. `<descriptor>` is the real path ploop opened (lib/di.c
 * ploop_open_dd), so a snapshot of the backup copy through its `DiskDescriptor.copy.xml` link stores
 * `DiskDescriptor.xml.copy.tmp`.
 *
 * So from a delta's creation until the operation ends, `<descriptor>.tmp` or the descriptor names it. The sweep lists
 * the folder first and reads the descriptors after, each `.tmp` before its descriptor: a delta the listing saw is named
 * by the `.tmp` when that is read, or, renamed away since, by the descriptor read after it. This holds whatever lock
 * the other operation took: ploop 7 locks `DiskDescriptor.xml.lck` with flock(2), which the sweep's caller holds too
 * (withDescriptorLock), but ploop 9 locks the base image with fcntl(2) record locks, which that does not exclude.
 *
 * A `.tmp` is read as what it is:
 * - `DiskDescriptor.xml.tmp` whose top delta is the child of the origin's snapshot G1 is the store of the snapshot
 *   that made G1 — this migration's offline snapshot of the origin — cut short (its ploop killed on its timeout, or
 *   its host crashed, before the rename): every step of a migration runs after the one before it ended, so no ploop
 *   of it runs now, and an offline snapshot switched no device to its delta. It is removed, and its delta is an
 *   orphan like any other: what ploop itself unlinks when an offline snapshot fails. (A later snapshot of the disk,
 *   an operator's on the target after the migration, names G1 too, lower in its chain: its top is not G1's child.);
 * - one that cannot be read whole (not well-formed XML: a store writing it in place, or garbage) may be any
 *   operation's: no delta is removed, and the step says so;
 * - any other is an operation under way (an operator's snapshot, a backup's), or one cut short: the deltas it names
 *   are kept. That includes this migration's online snapshot of the copy cut short: the source's device may have
 *   been switched to its delta before the rename (ploop keeps an online snapshot's delta when it fails), and only
 *   `DiskDescriptor.xml.copy.tmp` names it then.
 */

/** What a disk's snapshot deltas are named like: `<base without a trailing .{…}>.{GUID}` (get_new_delta_fname). */
export function deltaPattern(base: string): RegExp {
  let name = basename(base);
  const dot = name.lastIndexOf('.');
  if (dot >= 0 && name[dot + 1] === '{') name = name.slice(0, dot);
  return new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\{[0-9a-fA-F-]{36}\\}$`);
}

/** A descriptor's `.tmp` as the sweep reads it: absent, this migration's, unreadable, or naming these images. */
type Pending =
  | { kind: 'none' }
  | { kind: 'ours' }
  | { kind: 'unreadable'; why: string }
  | { kind: 'named'; images: string[] };

function pendingStore(tmp: string, ours: string | undefined): Pending {
  let xml: string;
  try {
    xml = readFileSync(tmp, 'utf8');
  } catch (err) {
    // Gone since the listing (renamed over its descriptor, which is read next), or never there.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    return { kind: 'unreadable', why: (err as Error).message };
  }
  const wellFormed = XMLValidator.validate(xml);
  if (wellFormed !== true) return { kind: 'unreadable', why: wellFormed.err.msg };
  const view = parseDescriptorView(xml, tmp);
  // do_create_snapshot gives the new top the snapshot's GUID as its parent.
  if (ours !== undefined && view.shots.some((sh) => sh.guid === view.top && sh.parent === ours.toLowerCase()))
    return { kind: 'ours' };
  return { kind: 'named', images: view.images.map((i) => i.file) };
}

/**
 * Remove the orphan deltas of the disk of `ddxml` (and of its backup copy), saying what it did in `actions`.
 * `originGuid`: the migration's offline snapshot of the origin. Throws when the descriptor cannot be read.
 */
export function sweepOrphanDeltas(ddxml: string, originGuid: string, actions: string[]): void {
  const dd = realPathOr(ddxml);
  const base = readDescriptorView(dd).images[0]?.file;
  if (!base) return;
  const folder = realPathOr(dirname(base));
  const pattern = deltaPattern(base);
  const listed = readdirSync(folder)
    .filter((f) => pattern.test(f))
    .map((f) => join(folder, f));
  const named = new Set<string>();
  for (const [descriptor, ours] of [
    [dd, originGuid],
    [backupOf(dd), undefined],
  ] as const) {
    const tmp = `${descriptor}.tmp`;
    const pending = pendingStore(tmp, ours);
    if (pending.kind === 'unreadable') {
      actions.push(`removed no delta: ${basename(tmp)} cannot be read whole (${pending.why})`);
      return;
    }
    if (pending.kind === 'ours') {
      rmSync(tmp, { force: true });
      actions.push(`removed ${basename(tmp)}, left by this migration's snapshot of the origin cut short`);
    }
    if (pending.kind === 'named') for (const f of pending.images) named.add(realPathOr(f));
    let images: string[] = [];
    try {
      images = readDescriptorView(descriptor).images.map((i) => i.file);
    } catch (err) {
      // The backup copy is gone (restored over the descriptor, or cleaned up); the descriptor itself was read above.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const f of images) named.add(realPathOr(f));
  }
  for (const p of listed) {
    if (named.has(realPathOr(p))) continue;
    unlinkSync(p);
    actions.push(`removed orphan delta ${basename(p)}`);
  }
}

import { existsSync, realpathSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ToolExit, paths, type EmuEnv } from '../lib/emu-env.ts';
import { commandUsage, isXmlFname, parseSize, parseUuid, summaryUsage } from './options.ts';
import { exposeDeltas, exposeDevice, hideDevice } from './sysfs.ts';
import { acquireLock } from '../lib/lock.ts';
import {
  InvalidDescriptor,
  NONE_UUID,
  TOPDELTA,
  chainTo,
  geometry,
  imagePath,
  readDescriptor,
  realOrAsGiven,
  sameGuid,
  storeDescriptor,
  storeDescriptorAround,
  type DiskDescriptor,
} from './descriptor.ts';
import { createDelta, mergeInto } from './delta.ts';
import { conflictOf, readRegistry, recordCorruption, withRegistry, type Device } from './devices.ts';
import { flushCache } from './page-cache.ts';
import { dropTracker, noteWritten } from './tracking.ts';
import { randomUuid } from '../lib/uuid.ts';
import { killAfterDelta, killBeforeStore } from '../lib/faults.ts';

/*
 * What the emulated ploop does, as ploop 7 at OpenVZ/ploop v7.0.280 (e49c878) does it (options.ts says why that
 * version). Line numbers below are at v7.0.280 unless a comment names another revision.
 */

/**
 * A fault plan's kill points inside a snapshot: `kill-after-delta` (its `.tmp` stored and its delta made, no device
 * switched yet) and `kill-before-store` (all done but the rename): a ploop killed there.
 */
const dieIfPlanned = (planned: boolean): void => {
  if (planned) process.kill(process.pid, 'SIGKILL');
};

/** ploop's SYSEXIT codes used here (include/libploop.h 399–445). */
export const EX = {
  MOUNT: 21,
  LOCK: 23,
  PARAM: 38,
  DISKDESCR: 39,
  DEV_NOT_MOUNTED: 40,
  NOSNAP: 43,
  EBUSY: 17,
} as const;

export const lockTimeoutMs = (): number => Number(process.env['HAUL_EMU_PLOOP_LOCK_TIMEOUT_MS'] ?? 60_000);

/**
 * Resolve a descriptor argument as the command line does: a name that does not end in `.xml` is refused with
 * `refusal` (the command's usage: tools/common.c is_xml_fname 124–132, checked by plooptool_mount 319,
 * plooptool_umount 553, plooptool_snapshot 683, plooptool_snapshot_switch 790, plooptool_snapshot_delete 834,
 * plooptool_snapshot_merge 890, plooptool_info 1126), then it is opened (openDd).
 */
export function resolveDd(arg: string, refusal: string = summaryUsage()): string {
  if (!isXmlFname(arg)) throw new ToolExit(EX.PARAM, refusal);
  return openDd(arg);
}

/**
 * lib/di.c ploop_open_dd (357–378): the descriptor's real path; one that cannot be resolved (none there) is
 * "Can't resolve X: <strerror>" and SYSEXIT_DISKDESCR, 39 (363–367). ploop 9 stats it first and exits
 * SYSEXIT_OPEN, 4, "Can't open X" (d5c202b lib/di.c 402–405).
 */
export function openDd(arg: string): string {
  try {
    return realpathSync(arg);
  } catch {
    throw new ToolExit(EX.DISKDESCR, `Can't resolve ${arg}: No such file or directory`);
  }
}

/** The summary usage (options.ts summaryUsage). */
export const usage = (): string => summaryUsage();

/** A `-u` as parse_uuid takes it (options.ts parseUuid), lower-cased for the descriptor; else exit 38. */
export function normalizeGuid(g: string): string {
  const v = parseUuid(g);
  if (v === undefined) throw new ToolExit(EX.PARAM, `Incorrect uuid specified: ${g}`);
  return v.toLowerCase();
}

/**
 * Take `<dd>.lck` the way ploop does (the file stays forever), then re-read the descriptor under the lock. The name
 * is the descriptor's real path's (lib/lock.c get_disk_descriptor_lock_fname 185–190, ploop_lock_di 192–206, from the
 * realpath ploop_open_dd keeps), so vzctl's mount of a disk its config names through a link takes the same lock as
 * ploop's command line.
 */
export function withDdLock<T>(env: EmuEnv, dd: string, fn: (desc: DiskDescriptor) => T): T {
  const lck = `${realOrAsGiven(dd)}.lck`;
  if (!existsSync(lck)) writeFileSync(lck, '', { mode: 0o644 });
  const release = acquireLock(paths.locks(env.clusterDir), lck, lockTimeoutMs());
  if (!release) throw new ToolExit(EX.LOCK, `The ${lck} is locked: Resource temporarily unavailable`);
  try {
    let desc: DiskDescriptor;
    try {
      desc = readDescriptor(dd);
    } catch (e) {
      if (e instanceof InvalidDescriptor) throw new ToolExit(EX.LOCK, `Failed to read ${dd}: ${e.message}`);
      throw e;
    }
    return fn(desc);
  } finally {
    release();
  }
}

/** A device on this node whose base delta is this descriptor's base image ("online"). */
export function deviceOf(env: EmuEnv, dd: string, desc: DiskDescriptor): Device | undefined {
  const base = imagePath(dd, chainTo(desc)[0]!.file);
  return readRegistry(env.clusterDir).devices.find((d) => d.node === env.node && d.deltas[0] === base);
}

/** The I/O lock of a device: the running CT takes it for each block write, online snapshot and merge take it too. */
export function withDeviceIo<T>(env: EmuEnv, dev: string, fn: () => T): T {
  const release = acquireLock(paths.locks(env.clusterDir), `io:${dev}`, 30_000);
  if (!release) throw new ToolExit(EX.EBUSY, `device ${dev} is busy`);
  try {
    return fn();
  } finally {
    release();
  }
}

/**
 * `ploop init -s SIZE DELTA` (tools/ploop.c plooptool_init 106–227): SIZE as parse_size reads it (a refused one: its
 * message and the usage, 38, 128–131), none or 0 the usage (216–219).
 */
export function init(sizeArg: string, delta: string, fmt: string): string[] {
  const size = parseSize(sizeArg);
  if ('error' in size) throw new ToolExit(EX.PARAM, `${size.error}\n${commandUsage('init')}`);
  if (size.sectors === 0n) throw new ToolExit(EX.PARAM, commandUsage('init'));
  const sectors = Number(size.sectors);
  const dd = `${dirname(delta)}/DiskDescriptor.xml`;
  if (existsSync(dd)) throw new ToolExit(EX.PARAM, `Can't create ${dd}: File exists`);
  createDelta(delta, sectors);
  const g = geometry(sectors);
  storeDescriptor(dd, {
    rootName: 'Parallels_disk_image',
    diskSize: sectors,
    ...g,
    blocksize: 2048,
    images: [{ guid: TOPDELTA, type: fmt === 'raw' ? 'Plain' : 'Compressed', file: basename(delta) }],
    top: TOPDELTA,
    shots: [{ guid: TOPDELTA, parent: NONE_UUID, temporary: false }],
  });
  return [`Creating delta ${delta} bs=2048 size=${sectors} sectors v2`, `Storing ${dd}`];
}

export function mount(
  env: EmuEnv,
  dd: string,
  opts: { readonly?: boolean; guid?: string; mountpoint?: string },
): { lines: string[]; dev: string } {
  return withDdLock(env, dd, (desc) => {
    const guid = opts.guid ?? desc.top;
    if (!desc.shots.some((s) => sameGuid(s.guid, guid)))
      throw new ToolExit(EX.NOSNAP, `Uuid ${guid} not found`);
    const deltas = chainTo(desc, guid).map((i) => imagePath(dd, i.file));
    return withRegistry(env.clusterDir, (reg) => {
      const existing = reg.devices.find((d) => d.node === env.node && d.deltas[0] === deltas[0]);
      if (existing) throw new ToolExit(EX.MOUNT, `Image ${deltas[0]} already used by device ${existing.dev}`);
      const dev: Device = {
        dev: `/dev/ploop${reg.next}`,
        node: env.node,
        ddxml: dd,
        deltas,
        readonly: opts.readonly ?? false,
      };
      if (opts.mountpoint) dev.mountpoint = opts.mountpoint;
      const conflict = conflictOf(reg, dev);
      if (conflict) {
        recordCorruption(env.clusterDir, env.node, `refused mount: ${conflict}`);
        throw new ToolExit(EX.EBUSY, `Can't mount ${dd}: ${conflict}`);
      }
      reg.next += 1;
      reg.devices.push(dev);
      exposeDevice(env, dev.dev);
      exposeDeltas(env, dev.dev, dev.deltas);
      const lines = deltas.map(
        (f, i) =>
          `Adding delta dev=${dev.dev} img=${f} (${i === deltas.length - 1 && !dev.readonly ? 'rw' : 'ro'})`,
      );
      if (opts.mountpoint) lines.push(`Mounted ${dev.dev}p1 at ${opts.mountpoint} fstype=ext4 data=''`);
      return { lines, dev: dev.dev };
    });
  });
}

/** syncfs: write the page cache of a device on this node back to its top delta. */
export function syncDevice(env: EmuEnv, dev: string): number {
  return withDeviceIo(env, dev, () => flushCache(env, dev));
}

export function umount(env: EmuEnv, by: { dd?: string; mountpoint?: string; dev?: string }): string[] {
  // Unmounting writes the file system's dirty pages back first, and the device's write tracker goes with it.
  for (const d of readRegistry(env.clusterDir).devices.filter((x) => x.node === env.node)) {
    if (by.dev !== undefined && d.dev !== by.dev) continue;
    if (by.mountpoint !== undefined && d.mountpoint !== by.mountpoint) continue;
    if (by.dd !== undefined && d.deltas[0] !== imagePath(by.dd, chainTo(readDescriptor(by.dd))[0]!.file))
      continue;
    syncDevice(env, d.dev);
    dropTracker(env, d.dev);
  }
  return withRegistry(env.clusterDir, (reg) => {
    let idx = -1;
    if (by.dd !== undefined) {
      const desc = readDescriptor(by.dd);
      const base = imagePath(by.dd, chainTo(desc)[0]!.file);
      idx = reg.devices.findIndex((d) => d.node === env.node && d.deltas[0] === base);
      if (idx < 0) throw new ToolExit(EX.DEV_NOT_MOUNTED, `Image ${base} is not mounted`);
    } else if (by.mountpoint !== undefined) {
      idx = reg.devices.findIndex((d) => d.node === env.node && d.mountpoint === by.mountpoint);
      if (idx < 0) throw new ToolExit(EX.PARAM, `Unable to find ploop device by ${by.mountpoint}`);
    } else {
      idx = reg.devices.findIndex((d) => d.node === env.node && d.dev === by.dev);
      if (idx < 0) throw new ToolExit(EX.PARAM, `Unable to find ploop device ${by.dev ?? ''}`);
    }
    const [d] = reg.devices.splice(idx, 1);
    hideDevice(env, d!.dev);
    const lines = d!.mountpoint ? [`Unmounting file system at ${d!.mountpoint}`] : [];
    lines.push(`Unmounting device ${d!.dev}`);
    return lines;
  });
}

/**
 * `ploop snapshot [-u G] [-o]`: relabel the top to G, add `<images[0].File>.{fresh}` (ploop 7's name) as the new
 * top, stored around the delta's making as ploop stores it (storeDescriptorAround).
 */
export function snapshot(env: EmuEnv, dd: string, guidArg: string | undefined, offline: boolean): string[] {
  const guid = guidArg ? normalizeGuid(guidArg) : `{${randomUuid()}}`;
  return withDdLock(env, dd, (desc) => {
    if (desc.shots.some((s) => sameGuid(s.guid, guid)))
      throw new ToolExit(EX.PARAM, `The snapshot ${guid} already exist`);
    if (desc.shots.length >= 127) throw new ToolExit(EX.PARAM, 'Too many snapshots');
    const fileName = `${desc.images[0]!.file}.{${randomUuid()}}`;
    const newFile = imagePath(dd, fileName);
    const lines: string[] = [];
    const device = deviceOf(env, dd, desc);
    const top = chainTo(desc).at(-1)!;
    if (device && !offline) lines.push(`Creating snapshot dev=${device.dev} img=${newFile}`);
    else lines.push(`Opening delta ${imagePath(dd, top.file)}`);
    const next: DiskDescriptor = {
      ...desc,
      images: [
        ...desc.images.map((i) => (sameGuid(i.guid, TOPDELTA) ? { ...i, guid } : i)),
        { guid: TOPDELTA, type: top.type, file: fileName },
      ],
      shots: [
        ...desc.shots.map((s) => ({
          ...s,
          guid: sameGuid(s.guid, TOPDELTA) ? guid : s.guid,
          parent: sameGuid(s.parent, TOPDELTA) ? guid : s.parent,
        })),
        { guid: TOPDELTA, parent: guid, temporary: false },
      ],
    };
    const push = () => {
      if (device && !offline) {
        // ploop syncs the file system before it switches the device to the new delta: the cached writes land in
        // the delta that becomes the snapshot, not in the new top.
        flushCache(env, device.dev);
        withRegistry(env.clusterDir, (reg) => {
          const d = reg.devices.find((x) => x.dev === device.dev)!;
          d.deltas = [...d.deltas, newFile];
          exposeDeltas(env, d.dev, d.deltas);
        });
      }
    };
    lines.push(`Adding snapshot ${TOPDELTA}`, `Storing ${dd}.tmp`);
    storeDescriptorAround(dd, next, () => {
      createDelta(newFile, desc.diskSize);
      dieIfPlanned(killAfterDelta);
      try {
        if (device && !offline) withDeviceIo(env, device.dev, push);
      } catch (e) {
        // A device busy past its wait: ploop's create_snapshot unlinks the delta when the switch fails.
        rmSync(newFile, { force: true });
        throw e;
      }
      dieIfPlanned(killBeforeStore);
    });
    lines.push(`ploop snapshot ${guid} has been successfully created`);
    return lines;
  });
}

const children = (desc: DiskDescriptor, guid: string) => desc.shots.filter((s) => sameGuid(s.parent, guid));

/**
 * The device a merge of `child` into `parent` runs through (none: offline), for this descriptor's disk, as
 * ploop_merge_snapshot_by_guid decides (lib/merge.c 819–889; ploop_delete_snapshot_by_guid at d5c202b): online when
 * the device holds both, next to each other; offline when it holds neither; any other case is "Inconsistency
 * detected" (SYSEXIT_PARAM), where merging offline would write a delta the device has open.
 */
function onlineMerge(device: Device | undefined, parent: string, child: string): Device | undefined {
  if (!device) return undefined;
  const [end, start] = [device.deltas.indexOf(parent), device.deltas.indexOf(child)];
  if (end === -1 && start === -1) return undefined;
  if (end === -1 || start === -1 || end + 1 !== start)
    throw new ToolExit(EX.PARAM, `Inconsistency detected ${parent} [${end}] ${child} [${start}]`);
  return device;
}

/**
 * Merge image `child` into its parent: the parent's file receives the child's blocks and takes the child's GUID;
 * the child's file is unlinked. Online (onlineMerge) the device drops the child's delta.
 */
function mergeChildIntoParent(
  env: EmuEnv,
  dd: string,
  desc: DiskDescriptor,
  childGuid: string,
  lines: string[],
): DiskDescriptor {
  const childShot = desc.shots.find((s) => sameGuid(s.guid, childGuid))!;
  const parentGuid = childShot.parent;
  const childImg = desc.images.find((i) => sameGuid(i.guid, childGuid))!;
  const parentImg = desc.images.find((i) => sameGuid(i.guid, parentGuid))!;
  const childFile = imagePath(dd, childImg.file);
  const parentFile = imagePath(dd, parentImg.file);
  const device = onlineMerge(deviceOf(env, dd, desc), parentFile, childFile);
  const online = device !== undefined;
  /** Online: the device without the child (its parent the new top), refused when that is a double attach. */
  const dropChild = (commit: boolean) =>
    withRegistry(env.clusterDir, (reg) => {
      const d = reg.devices.find((x) => x.dev === device!.dev)!;
      const merged: Device = { ...d, deltas: d.deltas.filter((f) => f !== childFile) };
      const conflict = conflictOf(reg, merged);
      if (conflict) {
        recordCorruption(env.clusterDir, env.node, `refused online merge: ${conflict}`);
        throw new ToolExit(EX.EBUSY, `Can't merge ${childFile}: ${conflict}`);
      }
      if (commit) {
        d.deltas = merged.deltas;
        exposeDeltas(env, d.dev, d.deltas);
      }
    });
  const work = () => {
    if (online) dropChild(false); // refused before any data moves
    const { start, end } = mergeInto(parentFile, childFile);
    if (!online) return;
    // The device drops its top only once the data is in the parent: a crash before leaves the child on top of the
    // device and of the chain, over a parent that holds some of its records, which it overrides, and the merge runs
    // again. Dropped first, the page cache's writeback would land in the parent under the child's older records.
    dropChild(true);
    noteWritten(env, device.dev, parentFile, start, end);
    lines.push(`Online snapshot merge ${childGuid} -> ${parentGuid}`, 'Merging top delta');
  };
  if (online) withDeviceIo(env, device.dev, work);
  else work();
  const next: DiskDescriptor = {
    ...desc,
    images: desc.images
      .filter((i) => i !== childImg)
      .map((i) => (i === parentImg ? { ...i, guid: childGuid } : i)),
    shots: desc.shots
      .filter((s) => !sameGuid(s.guid, childGuid))
      .map((s) => (sameGuid(s.guid, parentGuid) ? { ...s, guid: childGuid, temporary: false } : s)),
  };
  storeDescriptor(dd, next);
  if (existsSync(childFile)) unlinkSync(childFile);
  lines.push(`Removing ${childFile}`, 'ploop snapshot merged');
  return next;
}

export function snapshotDelete(env: EmuEnv, dd: string, guidArg: string): string[] {
  const guid = normalizeGuid(guidArg);
  return withDdLock(env, dd, (desc) => {
    const shot = desc.shots.find((s) => sameGuid(s.guid, guid));
    if (!shot) throw new ToolExit(EX.NOSNAP, `Can't find snapshot by uuid ${guid}`);
    const device = deviceOf(env, dd, desc);
    const img = desc.images.find((i) => sameGuid(i.guid, guid))!;
    if (device && sameGuid(guid, desc.top) && device.deltas.at(-1) === imagePath(dd, img.file)) {
      throw new ToolExit(EX.PARAM, `Unable to delete active snapshot ${guid}`);
    }
    const kids = children(desc, guid);
    const lines: string[] = [];
    if (kids.length === 0) {
      if (sameGuid(shot.parent, NONE_UUID)) throw new ToolExit(EX.PARAM, 'Unable to delete base image');
      const next: DiskDescriptor = {
        ...desc,
        images: desc.images
          .filter((i) => i !== img)
          .map((i) =>
            sameGuid(desc.top, guid) && sameGuid(i.guid, shot.parent) ? { ...i, guid: TOPDELTA } : i,
          ),
        shots: desc.shots
          .filter((s) => s !== shot)
          .map((s) =>
            sameGuid(desc.top, guid) && sameGuid(s.guid, shot.parent) ? { ...s, guid: TOPDELTA } : s,
          ),
      };
      storeDescriptor(dd, next);
      const f = imagePath(dd, img.file);
      if (existsSync(f)) unlinkSync(f);
      lines.push(`Removing ${f}`, `ploop snapshot ${guid} has been successfully deleted`);
      return lines;
    }
    if (kids.length === 1) {
      mergeChildIntoParent(env, dd, desc, kids[0]!.guid, lines);
      return lines;
    }
    storeDescriptor(dd, {
      ...desc,
      shots: desc.shots.map((s) => (s === shot ? { ...s, temporary: true } : s)),
    });
    lines.push(`Snapshot ${guid} has ${kids.length} children: marked temporary`);
    return lines;
  });
}

/** `snapshot-merge [-u G | -A]` (the command line refuses -u with -A before this: cli.ts). */
export function snapshotMerge(env: EmuEnv, dd: string, guidArg: string | undefined, all: boolean): string[] {
  return withDdLock(env, dd, (start) => {
    // -A merges the top down until one image is left; with none to merge the status stays SYSEXIT_PARAM, 38, and
    // nothing is printed (lib/merge.c ploop_merge_snapshot 1023–1047: its loop never runs; ploop 9 says "Cannot find
    // any snapshot by uuid (null)", d5c202b lib/merge.c 1101–1120).
    if (all && start.images.length === 1) throw new ToolExit(EX.PARAM, '');
    const lines: string[] = [];
    let desc = start;
    do {
      const guid = guidArg ? normalizeGuid(guidArg) : desc.top;
      const shot = desc.shots.find((s) => sameGuid(s.guid, guid));
      if (!shot) throw new ToolExit(EX.PARAM, `Can't find snapshot by uuid ${guid}`);
      if (sameGuid(shot.parent, NONE_UUID)) {
        if (all) break;
        throw new ToolExit(EX.PARAM, 'Unable to merge base image');
      }
      const siblings = children(desc, shot.parent);
      if (siblings.length > 1)
        throw new ToolExit(
          EX.PARAM,
          `Can't merge to snapshot ${shot.parent}: it has ${siblings.length} children`,
        );
      desc = mergeChildIntoParent(env, dd, desc, guid, lines);
    } while (all && desc.images.length > 1);
    return lines;
  });
}

/**
 * `ploop snapshot-switch -u G DD` (lib/snapshot.c ploop_switch_snapshot_ex 802–950): the disk goes back to snapshot G,
 * the top delta dropped and a fresh empty one made on G, offline only. Its refusals in its order, each exit 38: G the
 * top delta itself ("Nothing to do", 836–840; ploop compares with strcmp where this compares GUIDs in any case), no
 * such snapshot (842–847), a temporary one (849–852), then a device running the disk (870–878).
 */
export function snapshotSwitch(env: EmuEnv, dd: string, guidArg: string): string[] {
  const guid = normalizeGuid(guidArg);
  return withDdLock(env, dd, (desc) => {
    if (sameGuid(desc.top, guid)) throw new ToolExit(EX.PARAM, `Nothing to do, already on ${guid} snapshot`);
    const shot = desc.shots.find((s) => sameGuid(s.guid, guid));
    if (!shot) throw new ToolExit(EX.PARAM, `Can't find snapshot by uuid ${guid}`);
    if (shot.temporary) throw new ToolExit(EX.PARAM, `Snapshot ${guid} is temporary`);
    const device = deviceOf(env, dd, desc);
    if (device)
      throw new ToolExit(
        EX.PARAM,
        `Unable to perform switch to snapshot operation on running device (${device.dev})`,
      );
    const topShot = desc.shots.find((s) => sameGuid(s.guid, desc.top))!;
    const topImg = desc.images.find((i) => sameGuid(i.guid, desc.top))!;
    const fileName = `${desc.images[0]!.file}.{${randomUuid()}}`;
    const next: DiskDescriptor = {
      ...desc,
      images: [
        ...desc.images.filter((i) => i !== topImg),
        { guid: TOPDELTA, type: topImg.type, file: fileName },
      ],
      shots: [...desc.shots.filter((s) => s !== topShot), { guid: TOPDELTA, parent: guid, temporary: false }],
    };
    storeDescriptorAround(dd, next, () => {
      createDelta(imagePath(dd, fileName), desc.diskSize);
      dieIfPlanned(killBeforeStore);
    });
    const old = imagePath(dd, topImg.file);
    if (existsSync(old)) unlinkSync(old);
    return [`Removing ${old}`, 'ploop snapshot has been successfully switched'];
  });
}

/**
 * `ploop snapshot-list` (tools/ploop-snapshot.c plooptool_snapshot_list 199–287). The descriptor is read by
 * ploop_read_disk_descr (lib/xml.c 635–644, ploop_open_dd then read_dd) under any name: this command does not ask
 * is_xml_fname. One it cannot read ends it with "failed to read X: <the library's last error>" and 1 (255–259), after
 * the library's own message. `uuid` is parse_uuid's (options.ts parseUuid).
 */
export function snapshotList(
  arg: string,
  opts: { noHeader: boolean; fields?: string; uuid?: string; hideTop: boolean },
): string[] {
  const failed = (why: string) => `failed to read ${arg}: ${why}`;
  let dd: string;
  try {
    dd = openDd(arg);
  } catch (e) {
    if (!(e instanceof ToolExit)) throw e;
    throw new ToolExit(1, `${e.message}\n${failed(e.message)}`);
  }
  let desc: DiskDescriptor;
  try {
    desc = readDescriptor(dd);
  } catch (e) {
    throw new ToolExit(1, failed((e as Error).message));
  }
  // build_field_order_list 115–144: each name between commas, without regard to case (get_field_tbl_id 91–99,
  // strcasecmp); a comma at the end ends the list, an empty name elsewhere is unknown.
  const spec = opts.fields ?? 'parent_uuid,current,uuid,fname';
  const names = spec.split(',');
  if (names.length > 1 && spec.endsWith(',')) names.pop();
  const fields = names.map((n) => {
    const f = ['parent_uuid', 'current', 'uuid', 'fname'].find((k) => k === n.toLowerCase());
    if (f === undefined) throw new ToolExit(1, `Unknown field: ${n}`);
    return f;
  });
  const head: Record<string, string> = {
    parent_uuid: 'PARENT_UUID',
    current: 'C',
    uuid: 'UUID',
    fname: 'FNAME',
  };
  const width: Record<string, number> = { parent_uuid: 38, current: 1, uuid: 38, fname: 32 };
  let shots = desc.shots;
  if (opts.uuid !== undefined) {
    // From that snapshot down to the base, in that order; one that is not there ends the listing with 1
    // (tools/ploop-snapshot.c build_uuid_list 159–184).
    const guid = opts.uuid;
    if (!desc.shots.some((s) => sameGuid(s.guid, guid)))
      throw new ToolExit(1, `Can't find snapshot by uuid ${guid}`);
    shots = chainTo(desc, guid)
      .map((i) => desc.shots.find((s) => sameGuid(s.guid, i.guid))!)
      .reverse();
  }
  const topParent = desc.shots.find((s) => sameGuid(s.guid, desc.top))?.parent;
  if (opts.hideTop) shots = shots.filter((s) => !sameGuid(s.guid, desc.top));
  const cell = (f: string, v: string, last: boolean) => (last ? v : `${v.padEnd(width[f]!)} `);
  const lines: string[] = [];
  if (!opts.noHeader) lines.push(fields.map((f) => `${head[f]!.padEnd(width[f]!)} `).join(''));
  for (const s of shots) {
    const img = desc.images.find((i) => sameGuid(i.guid, s.guid))!;
    const current = opts.hideTop
      ? topParent && sameGuid(s.guid, topParent)
        ? '*'
        : ''
      : sameGuid(s.guid, desc.top)
        ? '*'
        : '';
    const v: Record<string, string> = {
      parent_uuid: s.parent,
      current,
      uuid: s.guid,
      fname: imagePath(dd, img.file),
    };
    lines.push(fields.map((f, i) => cell(f, v[f]!, i === fields.length - 1)).join(''));
  }
  return lines;
}

/**
 * `ploop list [-a]`: every ploop device of this node, one line each, as ploop 7 prints it (tools/ploop.c
 * plooptool_list 1190–1254, `%-12s %s %s %s` at 1249): the device's name, its base delta (the delta at index 0, from
 * /sys/block/ploopN/pdelta/0/image), its mount point with -a (else empty), and its cookie (empty: the emulator sets
 * none). ploop 9 prints `name\tbase` instead (d5c202b lib/dm.c display_entry); haul's agent reads both
 * (services/node-agent/src/adapters/tools.ts parsePloopList). -f (ploop 9's further deltas) is refused.
 */
export function list(env: EmuEnv, opts: { all: boolean } = { all: false }): string[] {
  return readRegistry(env.clusterDir)
    .devices.filter((d) => d.node === env.node)
    .map((d) => `${basename(d.dev).padEnd(12)} ${d.deltas[0]} ${opts.all ? (d.mountpoint ?? '') : ''} `);
}

export function info(env: EmuEnv, dd: string, opts: { size: boolean; device: boolean }): string[] {
  const desc = readDescriptor(dd);
  if (opts.size) return [`size:\t\t${desc.diskSize}`, `blocksize:\t${desc.blocksize}`, 'fmt_version:\t2'];
  if (opts.device) {
    const d = deviceOf(env, dd, desc);
    return [`device:\t\t${d?.dev ?? ''}`, `partition:\t${d ? `${d.dev}p1` : ''}`];
  }
  const files = chainTo(desc).map((i) => imagePath(dd, i.file));
  const used = files.reduce((a, f) => a + (existsSync(f) ? statSync(f).size : 0), 0);
  return [
    `${'resource'.padStart(11)} ${'Size'.padStart(14)} ${'Used'.padStart(14)}`,
    `${'1k-blocks'.padStart(11)} ${String(Math.floor((desc.diskSize * 512) / 1024)).padStart(14)} ${String(Math.ceil(used / 1024)).padStart(14)}`,
    `${'inodes'.padStart(11)} ${'65536'.padStart(14)} ${'12'.padStart(14)}`,
  ];
}

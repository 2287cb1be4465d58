import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { paths, type EmuEnv } from '../lib/emu-env.ts';
import { randomUuid } from '../lib/uuid.ts';
import type { HaResource } from '../shaman/cli.ts';
import { imageValue } from '../vzctl/config.ts';
import { ownerFile, serverId, veConf } from '../vzctl/registration.ts';
import { createPrivateArea } from '../vzctl/layout.ts';
import { appendRecords, appendTo, BLOCK, RECORD } from '../ploop/delta.ts';
import { imagePath, readDescriptor } from '../ploop/descriptor.ts';
import { init } from '../ploop/ops.ts';
import { Rng } from '../container/memory.ts';

/*
 * Making emulated nodes and CTs (`haul-emu create-node`, `create-ct`): what a host has before haul is installed on it.
 * The tests' harness calls these in its own process (each was a Node start of its own: 0.12-0.16 CPU-s a call, 159 of
 * them in the e2e tier); the CLI parses its flags into the same options.
 */

/** An emulated node: its root folder, its name, the folder its cluster shares, and what its host has. */
export type NodeOptions = {
  root: string;
  node: string;
  cluster: string;
  /** criu's version (default 3.17). */
  criuVersion?: string;
  /** The kernel tracks dirty memory (criu's mem_dirty_track; default true). */
  memTrack?: boolean;
  /** The CPU's flags (default fpu,sse,sse2,ssse3,sse4_1,sse4_2,avx). */
  cpuFlags?: string[];
  /** criu dumps plain process trees, without VZ's pieces (default false). */
  plainCriu?: boolean;
};

/** Make an emulated node; returns what `haul-emu create-node` prints. */
export function createNode(o: NodeOptions): string {
  const { node } = o;
  const [root, cluster] = [resolve(o.root), resolve(o.cluster)];
  for (const d of [
    'etc/vz/conf',
    'var/run/ve',
    'var/lib/haul-emu/cts',
    'vz/private',
    'vz/root',
    'vz/dump',
    'vz/lock',
  ])
    mkdirSync(join(root, d), { recursive: true });
  mkdirSync(cluster, { recursive: true });
  const cfg = {
    node,
    clusterDir: cluster,
    criuVersion: o.criuVersion ?? '3.17',
    memTrack: o.memTrack ?? true,
    cpuFlags: o.cpuFlags ?? ['fpu', 'sse', 'sse2', 'ssse3', 'sse4_1', 'sse4_2', 'avx'],
    vzCheckpoint: !(o.plainCriu ?? false),
  };
  writeFileSync(join(root, 'etc', 'haul-emu.json'), JSON.stringify(cfg, null, 2) + '\n');
  writeBootId(root);
  writeCgroupMounts(root);
  writeFsyncEnable(root);
  writeVcmmdctl(root);
  writeCgroupProps(root);
  writeFileSync(
    join(root, 'etc', 'vz', 'vz.conf'),
    [
      `# emulated node ${node}`,
      `VE_ROOT=${root}/vz/root/$VEID`,
      `VE_PRIVATE=${root}/vz/private/$VEID`,
      `LOCKDIR=${root}/vz/lock`,
      `DUMPDIR=${root}/vz/dump`,
      '',
    ].join('\n'),
  );
  return `node ${node} at ${root}`;
}

/** An emulated CT: its id, its workload and its disks (absolute paths). */
export type CtOptions = {
  ctid: string;
  /** Memory in MiB (default 64). */
  memoryMb?: number;
  /** Pages dirtied per second (default 500). */
  dirtyRate?: number;
  /** Disk blocks written per second (default 20). */
  diskWrites?: number;
  /** The seed of its memory, its workload and its disks' content (default 1). */
  seed?: number;
  /** Each disk's size, as ploop init takes it (default 64M). */
  diskSize?: string;
  /** MiB of seeded data in the root disk's base image (default 0). */
  diskFill?: number;
  /** The page cache's writeback interval in ms (default 30,000). */
  writebackMs?: number;
  /** Shared disks' folders (one DiskDescriptor.xml each, made when missing). */
  shared?: string[];
  /** DISK= as VZ7 writes it, with a secondary local disk (see `haul-emu --help`). */
  relativeDisks?: boolean;
  /** Only an unregistered config, as vzmigrate leaves one on a destination. */
  configOnly?: boolean;
};

/** Make an emulated CT on `env`'s node; returns what `haul-emu create-ct` prints. */
export function createCt(env: EmuEnv, o: CtOptions): string {
  const { ctid } = o;
  const seed = o.seed ?? 1;
  const shared = (o.shared ?? []).map((d) => resolve(d));
  const size = o.diskSize ?? '64M';
  const priv = join(env.root, 'vz', 'private', ctid);
  const lines = [
    `# emulated CT ${ctid}`,
    `HAUL_EMU_MEMORY_MB=${o.memoryMb ?? 64}`,
    `HAUL_EMU_DIRTY_PAGES_PER_SEC=${o.dirtyRate ?? 500}`,
    `HAUL_EMU_DISK_WRITES_PER_SEC=${o.diskWrites ?? 20}`,
    `HAUL_EMU_SEED=${seed}`,
    `HAUL_EMU_WRITEBACK_MS=${o.writebackMs ?? 30_000}`,
  ];
  const relative = o.relativeDisks ?? false;
  if (relative) lines.push(`DISK="${vz7DiskList(priv, shared, size)}"`);
  else if (shared.length)
    lines.push(
      `DISK="${shared.map((d, i) => `uuid={${String(i).padStart(8, '0')}-0000-4000-8000-000000000000},enabled=yes,image=${imageValue(priv, d)},mnt=/data${i}`).join(';')}"`,
    );
  if (o.configOnly) {
    // An unregistered config, as vzmigrate leaves one on a destination before it registers the CT there.
    writeFileSync(paths.ctConf(env, ctid), lines.join('\n') + '\n');
    return `config of CT ${ctid} on ${env.node}`;
  }
  registerNew(env, ctid, priv, lines.join('\n') + '\n');
  /** A new disk in `dir` (ploop init), with its seeded blocks; returns its descriptor. */
  const newDisk = (dir: string, diskSeed: number): string => {
    mkdirSync(dir, { recursive: true });
    init(size, join(dir, 'root.hds'), 'expanded');
    fillDisk(join(dir, 'DiskDescriptor.xml'), diskSeed);
    return join(dir, 'DiskDescriptor.xml');
  };
  const root = newDisk(join(priv, 'root.hdd'), seed);
  if ((o.diskFill ?? 0) > 0) fillData(root, o.diskFill!, seed);
  if (relative) newDisk(join(priv, localDiskName), seed + 1000);
  shared.forEach((d, i) => {
    if (!existsSync(join(d, 'DiskDescriptor.xml'))) newDisk(d, seed + 1 + i);
  });
  return `CT ${ctid} on ${env.node}: root disk ${priv}/root.hdd${relative ? `, local ${priv}/${localDiskName}` : ''}${shared.length ? `, shared ${shared.join(', ')}` : ''}`;
}

/**
 * The node's cgroup v1 mounts as a VZ7 host has them (RHEL7 systemd, plus VZ's private ve and beancounter), in
 * /proc/self/mountinfo's format; no /proc/self/ns/cgroup (VZ7's 3.10 kernel has no cgroup namespace), so a dump
 * must map each CT-visible one (vz-cpt.in 45–49).
 */
function writeCgroupMounts(root: string): void {
  const ctls = [
    'systemd',
    'cpuset',
    'cpu,cpuacct',
    'memory',
    'devices',
    'freezer',
    'net_cls,net_prio',
    'blkio',
  ];
  const all = [...ctls, 'perf_event', 'hugetlb', 'pids', 've', 'beancounter'];
  const lines = all.map((c, i) => {
    const opt =
      c === 'systemd' ? 'xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd' : c;
    return `${30 + i} 25 0:${27 + i} / /sys/fs/cgroup/${c} rw,nosuid,nodev,noexec,relatime shared:${10 + i} - cgroup cgroup rw,${opt}`;
  });
  mkdirSync(join(root, 'proc', 'self'), { recursive: true });
  writeFileSync(join(root, 'proc', 'self', 'mountinfo'), lines.join('\n') + '\n');
}

/** The node's boot id, where a host's agent reads it (below the node root, as /proc/sys/kernel/random/boot_id). */
export function writeBootId(root: string): void {
  mkdirSync(join(root, 'proc', 'sys', 'kernel', 'random'), { recursive: true });
  writeFileSync(join(root, 'proc', 'sys', 'kernel', 'random', 'boot_id'), `${randomUuid()}\n`);
}

/**
 * The host's fs.fsync-enable, which VZ kernels have (libvzctl lib/env.c real_env_stop writes it); vz-cpt-action and
 * vz-rst-action carry a CT's own value only when the host has it (vz-cpt-action.in 117, vz-rst-action.in 170).
 */
function writeFsyncEnable(root: string): void {
  mkdirSync(join(root, 'proc', 'sys', 'fs'), { recursive: true });
  writeFileSync(join(root, 'proc', 'sys', 'fs', 'fsync-enable'), '1\n');
}

/**
 * vcmmd installed: libvzctl manages a CT's memory through vcmmd where /usr/sbin/vcmmdctl exists (lib/vcmm.c
 * is_managed_by_vcmmd 196–203). The file only marks it; the vcmmdctl on PATH (host-emulators/bin) answers, and
 * refuses to run on a node without this file (vcmmd/cli.ts).
 */
function writeVcmmdctl(root: string): void {
  mkdirSync(join(root, 'usr', 'sbin'), { recursive: true });
  writeFileSync(join(root, 'usr', 'sbin', 'vcmmdctl'), '#!/bin/sh\nexec vcmmdctl "$@"\n', { mode: 0o755 });
}

/**
 * libvzctl's cgroup-props.conf (scripts/cgroup-props.conf.in, installed in `$(libexecdir)/libvzctl/scripts` with
 * vz-cpt, which passes it to criu as --cgroup-props-file, vz-cpt.in 39, 123). criu's format (criu/cgroup-props.c);
 * the emulated criu only checks that it opens.
 */
function writeCgroupProps(root: string): void {
  const dir = join(root, 'usr', 'libexec', 'libvzctl', 'scripts');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'cgroup-props.conf'),
    ['"name=systemd":', ' - "strategy": "merge"', ' - "properties": ["release_agent"]', ''].join('\n'),
  );
}

/**
 * A new CT's private area is made as `vzctl create` makes a ploop CT's (layout 5: vzctl/layout.ts), and the CT is
 * registered on its node as VZ7 registers one (libvzctl lib/vz.c vzctl2_env_register): its config is
 * $VE_PRIVATE/ve.conf, /etc/vz/conf/<ctid>.conf links to it, $VE_PRIVATE/.owner names the node; and the HA cluster
 * runs it there (its resource ct-<ctid>, as `shaman -i add` makes it).
 */
function registerNew(env: EmuEnv, ctid: string, priv: string, conf: string): void {
  createPrivateArea(priv);
  writeFileSync(veConf(priv), conf);
  rmSync(paths.ctConf(env, ctid), { force: true });
  symlinkSync(veConf(priv), paths.ctConf(env, ctid));
  writeFileSync(ownerFile(priv), serverId(env));
  mkdirSync(join(env.clusterDir, 'shaman'), { recursive: true });
  const resource: HaResource = { node: env.node, path: priv, prio: 0 };
  writeFileSync(join(env.clusterDir, 'shaman', `ct-${ctid}.json`), JSON.stringify(resource));
}

/** The secondary local disk of a CT made with --relative-disks, inside its VE_PRIVATE. */
const localDiskName = 'disk1.hdd';

/**
 * A CT's DISK= value as VZ7 writes it (libvzctl lib/disk.c disk2str, OpenVZ/libvzctl@ebbfc38 lines 537–606):
 * `uuid=…,size=<KiB>,enabled=yes,mnt=…,image=…` per disk, `;` between them, image= relative to VE_PRIVATE for a disk
 * inside it (get_rel_path): the root disk (mnt=/), a secondary local disk, then each shared disk (absolute).
 */
function vz7DiskList(priv: string, shared: string[], size: string): string {
  const m = /^(\d+)([KMGT]?)$/i.exec(size);
  const kib = m
    ? Number(m[1]) *
      ({ '': 1 / 2, K: 1, M: 1024, G: 1024 ** 2, T: 1024 ** 3 }[(m[2] ?? '').toUpperCase()] ?? 1)
    : 0;
  const entry = (uuid: string, mnt: string, disk: string) =>
    `uuid={${uuid}-0000-4000-8000-000000000000},size=${Math.floor(kib)},enabled=yes,mnt=${mnt},image=${imageValue(priv, disk)}`;
  return [
    entry('7f000000', '/', join(priv, 'root.hdd')),
    entry('7f000001', '/local1', join(priv, localDiskName)),
    ...shared.map((d, i) => entry(String(i).padStart(8, '0'), `/data${i}`, d)),
  ].join(';');
}

/**
 * Fill a disk's base image with `mb` MiB of seeded data, block after block (a delta as large as a disk that much in
 * use, so a copy of it takes the time such a copy takes). Written in large appends, not block by block.
 */
function fillData(dd: string, mb: number, seed: number): void {
  const desc = readDescriptor(dd);
  const file = imagePath(dd, desc.images[0]!.file);
  const blocks = Math.floor((mb * 1024 * 1024) / BLOCK);
  const per = 256;
  const rng = new Rng(seed * 104729);
  const buf = Buffer.alloc(per * RECORD);
  appendTo(file, (write) => {
    for (let b = 0; b < blocks; b += per) {
      const n = Math.min(per, blocks - b);
      for (let k = 0; k < n; k++) {
        buf.writeUInt32LE(b + k, k * RECORD);
        buf.fill(rng.next() & 0xff, k * RECORD + 4, (k + 1) * RECORD);
        buf.writeUInt32LE(rng.next(), k * RECORD + 4);
      }
      write(buf.subarray(0, n * RECORD));
    }
  });
}

/** Give a fresh disk some seeded content so its checksum means something. */
function fillDisk(dd: string, seed: number): void {
  const desc = readDescriptor(dd);
  const file = imagePath(dd, desc.images[0]!.file);
  const rng = new Rng(seed * 7919);
  const blocks = Math.max(1, Math.floor((desc.diskSize * 512) / BLOCK / 8));
  // One append of 64 records, synced once (a sync per block was 64 syncs per disk made).
  const recs = Buffer.alloc(64 * RECORD);
  for (let n = 0; n < 64; n++) {
    const at = n * RECORD;
    recs.fill(rng.next() & 0xff, at + 4, at + 4 + BLOCK);
    recs.writeUInt32LE(rng.next(), at + 4);
    recs.writeUInt32LE(rng.below(blocks), at);
  }
  appendRecords(file, recs);
}

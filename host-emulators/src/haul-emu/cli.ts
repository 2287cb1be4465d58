import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { ToolExit, emuEnv, paths, type EmuEnv } from '../lib/emu-env.ts';
import type { HaResource } from '../shaman/cli.ts';
import { ownerFile, serverId, veConf } from '../vzctl/registration.ts';
import { acquireLock } from '../lib/lock.ts';
import { imageValue } from '../vzctl/config.ts';
import { getopt, out } from '../lib/tool.ts';
import { appendBlock, BLOCK } from '../ploop/delta.ts';
import { imagePath, readDescriptor } from '../ploop/descriptor.ts';
import { init, resolveDd } from '../ploop/ops.ts';
import { corruptionLog, diskChecksum, diskView, haResource, memoryChecksum, pauseWorkload } from './seams.ts';
import { Rng } from '../container/memory.ts';
import { crypto } from '../lib/lazy.ts';

const help = `haul-emu: set up emulated nodes and containers, and read the emulator-only proof seams.

  haul-emu create-node --root DIR --node NAME --cluster DIR [--criu-version V] [--no-mem-track] [--cpu-flags a,b]
                     [--plain-criu]     (criu dumps without VZ's pieces: --freeze-cgroup, --root, externals)
  haul-emu create-ct --ctid ID [--memory-mb 64] [--dirty-rate PAGES/S] [--disk-writes BLOCKS/S] [--seed N]
                     [--disk-size 64M] [--disk-fill MB] [--writeback-ms MS] [--shared-disk DIR]...
                     [--relative-disks] [--config-only]                           (HAUL_EMU_ROOT names the node)
                     --relative-disks: DISK= as VZ7 writes it (libvzctl lib/disk.c disk2str): the root disk
                     (image=root.hdd,mnt=/) and a secondary local disk (image=disk1.hdd) relative to VE_PRIVATE,
                     then the shared disks (absolute)
  haul-emu checksum-mem CTID        memory checksum of a running CT (JSON)
  haul-emu checksum-disk DD.xml     content checksum of the disk as its CT sees it: the merged view of the chain and,
                                    when mounted on this node, the page cache on top (JSON)
  haul-emu disk-view DD.xml         block → sha256 of that view (JSON), to replay a CT's write journal against
  haul-emu freeze|thaw CTID         pause or resume a CT's workload (to read its disks at rest)
  haul-emu corruption-log           refused double read-write attaches recorded in this cluster (JSON lines)
  haul-emu hold-lock DD.xml [--ms N] hold the descriptor's lock (to make ploop time out with exit 23)
  haul-emu ha-resource ct-CTID       where the HA cluster runs the CT (JSON: node, path, prio)
  haul-emu new-boot-id              give the node a new proc/sys/kernel/random/boot_id, as a reboot would (nothing
                                    else of a reboot is emulated)`;

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
function writeBootId(root: string): void {
  mkdirSync(join(root, 'proc', 'sys', 'kernel', 'random'), { recursive: true });
  writeFileSync(join(root, 'proc', 'sys', 'kernel', 'random', 'boot_id'), `${crypto().randomUUID()}\n`);
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

export async function haulEmuMain(argv: string[]): Promise<number> {
  const cmd = argv[0];
  const { opts, args } = getopt(argv.slice(1), [
    '--root',
    '--node',
    '--cluster',
    '--criu-version',
    '--cpu-flags',
    '--ctid',
    '--memory-mb',
    '--dirty-rate',
    '--disk-writes',
    '--seed',
    '--disk-size',
    '--disk-fill',
    '--writeback-ms',
    '--shared-disk',
    '--ms',
  ]);
  const one = (k: string) => opts.get(k)?.at(-1);
  switch (cmd) {
    case 'create-node': {
      const root = resolve(need(one('--root'), '--root'));
      const node = need(one('--node'), '--node');
      const cluster = resolve(need(one('--cluster'), '--cluster'));
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
        criuVersion: one('--criu-version') ?? '3.17',
        memTrack: !opts.has('--no-mem-track'),
        cpuFlags: (one('--cpu-flags') ?? 'fpu,sse,sse2,ssse3,sse4_1,sse4_2,avx').split(','),
        vzCheckpoint: !opts.has('--plain-criu'),
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
      out(`node ${node} at ${root}`);
      return 0;
    }
    case 'create-ct': {
      const env = emuEnv();
      const ctid = need(one('--ctid'), '--ctid');
      const seed = Number(one('--seed') ?? 1);
      const shared = (opts.get('--shared-disk') ?? []).map((d) => resolve(d));
      const size = one('--disk-size') ?? '64M';
      const priv = join(env.root, 'vz', 'private', ctid);
      const lines = [
        `# emulated CT ${ctid}`,
        `HAUL_EMU_MEMORY_MB=${one('--memory-mb') ?? 64}`,
        `HAUL_EMU_DIRTY_PAGES_PER_SEC=${one('--dirty-rate') ?? 500}`,
        `HAUL_EMU_DISK_WRITES_PER_SEC=${one('--disk-writes') ?? 20}`,
        `HAUL_EMU_SEED=${seed}`,
        `HAUL_EMU_WRITEBACK_MS=${one('--writeback-ms') ?? 30_000}`,
      ];
      const relative = opts.has('--relative-disks');
      if (relative) lines.push(`DISK="${vz7DiskList(priv, shared, size)}"`);
      else if (shared.length)
        lines.push(
          `DISK="${shared.map((d, i) => `uuid={${String(i).padStart(8, '0')}-0000-4000-8000-000000000000},enabled=yes,image=${imageValue(priv, d)},mnt=/data${i}`).join(';')}"`,
        );
      if (opts.has('--config-only')) {
        // An unregistered config, as vzmigrate leaves one on a destination before it registers the CT there.
        writeFileSync(paths.ctConf(env, ctid), lines.join('\n') + '\n');
        out(`config of CT ${ctid} on ${env.node}`);
        return 0;
      }
      registerNew(env, ctid, priv, lines.join('\n') + '\n');
      mkdirSync(join(priv, 'root.hdd'), { recursive: true });
      init(size, join(priv, 'root.hdd', 'root.hds'), 'expanded');
      fillDisk(join(priv, 'root.hdd', 'DiskDescriptor.xml'), seed);
      const fill = Number(one('--disk-fill') ?? 0);
      if (fill > 0) fillData(join(priv, 'root.hdd', 'DiskDescriptor.xml'), fill, seed);
      if (relative) {
        const local = join(priv, localDiskName);
        mkdirSync(local, { recursive: true });
        init(size, join(local, 'root.hds'), 'expanded');
        fillDisk(join(local, 'DiskDescriptor.xml'), seed + 1000);
      }
      shared.forEach((d, i) => {
        if (existsSync(join(d, 'DiskDescriptor.xml'))) return;
        mkdirSync(d, { recursive: true });
        init(size, join(d, 'root.hds'), 'expanded');
        fillDisk(join(d, 'DiskDescriptor.xml'), seed + 1 + i);
      });
      out(
        `CT ${ctid} on ${env.node}: root disk ${priv}/root.hdd${relative ? `, local ${priv}/${localDiskName}` : ''}${shared.length ? `, shared ${shared.join(', ')}` : ''}`,
      );
      return 0;
    }
    case 'checksum-mem': {
      const env = emuEnv();
      const ctid = need(args[0], 'CTID');
      try {
        out(JSON.stringify(await memoryChecksum(env, ctid)));
      } catch (e) {
        throw new ToolExit(1, (e as Error).message);
      }
      return 0;
    }
    case 'freeze':
    case 'thaw': {
      const env = emuEnv();
      const ctid = need(args[0], 'CTID');
      await pauseWorkload(env, ctid, cmd);
      out(`${cmd === 'freeze' ? 'frozen' : 'thawed'} CT ${ctid}`);
      return 0;
    }
    case 'checksum-disk': {
      out(JSON.stringify(diskChecksum(resolveDd(need(args[0], 'DD.xml')), nodeEnv())));
      return 0;
    }
    case 'disk-view': {
      out(JSON.stringify(diskView(resolveDd(need(args[0], 'DD.xml')), nodeEnv())));
      return 0;
    }
    case 'corruption-log': {
      process.stdout.write(corruptionLog(emuEnv().clusterDir));
      return 0;
    }
    case 'ha-resource': {
      const r = haResource(emuEnv().clusterDir, need(args[0], 'RESOURCE'));
      if (!r) throw new ToolExit(1, `no HA resource ${args[0]}`);
      out(JSON.stringify(r));
      return 0;
    }
    case 'new-boot-id': {
      writeBootId(emuEnv().root);
      return 0;
    }
    case 'hold-lock': {
      const env = emuEnv();
      const dd = resolveDd(need(args[0], 'DD.xml'));
      const release = acquireLock(paths.locks(env.clusterDir), `${dd}.lck`, 60_000);
      if (!release) throw new ToolExit(23, `could not take ${dd}.lck`);
      out('held');
      process.on('SIGTERM', () => {
        release();
        process.exit(0);
      });
      await new Promise((r) => setTimeout(r, Number(one('--ms') ?? 3_600_000)));
      release();
      return 0;
    }
    case '--help':
    case 'help':
    case undefined:
      out(help);
      return cmd === undefined ? 2 : 0;
    default:
      throw new ToolExit(2, `unknown command ${cmd}\n${help}`);
  }
}

/**
 * A new CT is registered on its node as VZ7 registers one (libvzctl lib/vz.c vzctl2_env_register): its config is
 * $VE_PRIVATE/ve.conf, /etc/vz/conf/<ctid>.conf links to it, $VE_PRIVATE/.owner names the node; and the HA cluster
 * runs it there (its resource ct-<ctid>, as `shaman -i add` makes it).
 */
function registerNew(env: EmuEnv, ctid: string, priv: string, conf: string): void {
  mkdirSync(priv, { recursive: true });
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

const need = (v: string | undefined, what: string): string => {
  if (v === undefined) throw new ToolExit(2, `${what} is required (see haul-emu --help)`);
  return v;
};

/** The node a proof seam reads on, when HAUL_EMU_ROOT names one (a disk's page cache lives on its node). */
const nodeEnv = (): EmuEnv | undefined => (process.env['HAUL_EMU_ROOT'] ? emuEnv() : undefined);

/**
 * Fill a disk's base image with `mb` MiB of seeded data, block after block (a delta as large as a disk that much in
 * use, so a copy of it takes the time such a copy takes). Written in large appends, not block by block.
 */
function fillData(dd: string, mb: number, seed: number): void {
  const desc = readDescriptor(dd);
  const file = imagePath(dd, desc.images[0]!.file);
  const blocks = Math.floor((mb * 1024 * 1024) / BLOCK);
  const per = 256;
  const rec = 4 + BLOCK;
  const rng = new Rng(seed * 104729);
  const fd = openSync(file, 'a');
  try {
    const buf = Buffer.alloc(per * rec);
    for (let b = 0; b < blocks; b += per) {
      const n = Math.min(per, blocks - b);
      for (let k = 0; k < n; k++) {
        buf.writeUInt32LE(b + k, k * rec);
        buf.fill(rng.next() & 0xff, k * rec + 4, (k + 1) * rec);
        buf.writeUInt32LE(rng.next(), k * rec + 4);
      }
      writeSync(fd, buf, 0, n * rec);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Give a fresh disk some seeded content so its checksum means something. */
function fillDisk(dd: string, seed: number): void {
  const desc = readDescriptor(dd);
  const file = imagePath(dd, desc.images[0]!.file);
  const rng = new Rng(seed * 7919);
  const blocks = Math.max(1, Math.floor((desc.diskSize * 512) / BLOCK / 8));
  for (let n = 0; n < 64; n++) {
    const b = Buffer.alloc(BLOCK, rng.next() & 0xff);
    b.writeUInt32LE(rng.next(), 0);
    appendBlock(file, rng.below(blocks), b);
  }
}

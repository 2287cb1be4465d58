import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import { readCtVars } from './vz-config.ts';

/*
 * What a dump of a Virtuozzo container passes to criu beyond the task and its folders, as VZ's own checkpoint does
 * it (OpenVZ/libvzctl@ebbfc38 scripts/vz-cpt.in and lib/cr_criu.c; VZ7's v7.0.360) and P.Haul's vz module
 * (checkpoint-restore/p.haul@02199d8 phaul/p_haul_vz.py). Line numbers are those revisions'. Host paths are read
 * below the agent's host root ('' on a real host).
 */

/** The pre-dump's part: freeze through the CT's freezer cgroup, and which controllers to dump. */
export type VzFreeze = { freezeCgroup: string; controllers: readonly string[] };

/** The final dump's part. */
export type VzDump = VzFreeze & {
  /** VE_ROOT: the root of the CT's mount namespace (vz-cpt.in 125; p_haul_vz.py 158). */
  root: string;
  /** `<mountpoint>:<key>` for each CT-visible cgroup mount, `<dst>:<src>` for each bind mount. */
  extMountMaps: string[];
  /** `dev[<major>/<minor>]:<uuid>` for each secondary ploop disk's partition. */
  externals: string[];
  /** `[controller:]/path` roots of the CT's cgroups (vz-cpt.in 41–42). */
  cgroupRoots: string[];
};

/**
 * The controllers whose cgroups are dumped: P.Haul's list for both pre-dumps and dumps (p_haul_vz.py 40–55, passed
 * at 183–184); vz-cpt.in 99–113 names the same set spelt per mount.
 */
export const vzControllers = [
  'cpuacct,cpu',
  'cpuset',
  'net_cls',
  'net_prio,net_cls',
  'memory',
  'devices',
  'blkio',
  'freezer',
  'perf_event',
  'hugetlb',
  'name=systemd',
  'pids',
  'beancounter',
  've',
] as const;

/**
 * cgroup mounts the CT sees, by the controllers a mount must carry, and the key vz-rst maps back on restore
 * (p_haul_vz.py vz_cgroup_mount_map, 25–38; libvzctl lib/cgroup.c cg_get_cgroup_env_param, 722–751).
 */
const cgroupMountKeys: [string[], string][] = [
  [['cpu', 'cpuacct'], 'cpu'],
  [['cpuset'], 'cpuset'],
  [['net_cls'], 'net_cls'],
  [['net_cls', 'net_prio'], 'net_cls,net_prio'],
  [['memory'], 'memory'],
  [['devices'], 'devices'],
  [['blkio'], 'blkio'],
  [['freezer'], 'freezer'],
  [['perf_event'], 'perf_event'],
  [['hugetlb'], 'hugetlb'],
  [['name=systemd'], 'systemd'],
  [['pids'], 'pids'],
];

/** The CT's freezer cgroup: `<freezer mount>/<slice>/<ctid>/` (lib/cgroup.c get_cgroup_name 419–428; P.Haul 179–180). */
export function vzFreeze(hostRoot: string, etcVz: string, ctid: string): VzFreeze {
  const slice = readCtVars(etcVz, ctid)?.['VE_CGROUP_SLICE'] || 'machine.slice';
  return {
    freezeCgroup: `${hostRoot}/sys/fs/cgroup/freezer/${slice}/${ctid}/`,
    controllers: vzControllers,
  };
}

/**
 * `--ext-mount-map` for the host's cgroup v1 mounts when the kernel has no cgroup namespace (vz-cpt.in 45–49; VZ7's
 * 3.10 kernel has none), one per key of the table, from /proc/self/mountinfo as P.Haul reads it (189–208).
 */
export function cgroupMountMaps(hostRoot: string): string[] {
  const info = `${hostRoot}/proc/self/mountinfo`;
  if (existsSync(`${hostRoot}/proc/self/ns/cgroup`) || !existsSync(info)) return [];
  const mounts = readFileSync(info, 'utf8')
    .split('\n')
    .map((l) => l.split(' - '))
    .filter(([, tail]) => tail?.split(' ')[0] === 'cgroup')
    .map(([head, tail]) => ({ at: head!.split(' ')[4]!, opts: (tail!.split(' ')[2] ?? '').split(',') }));
  return cgroupMountKeys.flatMap(([ctls, key]) => {
    const m = mounts.find((x) => ctls.every((c) => x.opts.includes(c)));
    return m ? [`${m.at}:${key}`] : [];
  });
}

/** `--ext-mount-map <dst>:<src>` for each bind mount with a host source (lib/cr_criu.c make_ext_mount_args 83–108). */
export function bindMountMaps(vars: Record<string, string>): string[] {
  return (vars['BINDMOUNT'] ?? '')
    .split(/[\t ]+/)
    .map((s) => /^(\/[^:]*):(\/[^,]*)/.exec(s))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[2]}:${m[1]}`);
}

/**
 * The CT's secondary disks (every enabled `DISK=` entry not mounted at `/`), which P.Haul marks external
 * (`--vz-secondary-disks uuid:major:minor`, p_haul_vz.py 166–170, 435–455): their descriptor and uuid.
 */
export function secondaryDisks(vars: Record<string, string>): { dd: string; uuid: string }[] {
  const priv = vars['VE_PRIVATE'] ?? '';
  return (vars['DISK'] ?? '').split(';').flatMap((entry) => {
    const kv = Object.fromEntries(
      entry
        .split(',')
        .map((p) => p.split('='))
        .filter((p) => p.length >= 2)
        .map(([k, ...v]) => [k!.trim(), v.join('=')]),
    );
    const image = kv['image'];
    if (!image || !kv['uuid'] || kv['enabled'] === 'no' || kv['mnt'] === '/') return [];
    const path = isAbsolute(image) || !priv ? image : join(priv, image);
    return [{ dd: path.endsWith('.xml') ? path : join(path, 'DiskDescriptor.xml'), uuid: kv['uuid'] }];
  });
}

/** `major:minor` of a block device, from sysfs (`/sys/class/block/<name>/dev`), following a /dev/mapper link. */
export function blockDevNumber(hostRoot: string, device: string): { major: number; minor: number } {
  let name = basename(device);
  try {
    name = basename(realpathSync(`${hostRoot}${device}`));
  } catch {
    /* no device node below the host root: its own name */
  }
  const [major, minor] = readFileSync(`${hostRoot}/sys/class/block/${name}/dev`, 'utf8').trim().split(':');
  return { major: Number(major), minor: Number(minor) };
}

/** The cgroup roots vz-cpt passes (vz-cpt.in 41–42, 136). */
export const vzCgroupRoots = (ctid: string): string[] => [
  `/machine.slice/${ctid}`,
  `ve:/${ctid}`,
  `beancounter:/${ctid}`,
  `name=systemd:/${ctid}`,
];

/**
 * The side files vz-cpt writes beside a dump and vz-rst reads back into the restored CT's ve cgroup
 * (vz-cpt.in v7.0.360 73–90 `cgget -n -v -r ve.<name> CTID > vz_<name>.img`; vz-rst.in 92–99; P.Haul 228–238).
 * Read from the CT's ve cgroup (`<ve mount>/<ctid>/`, private: lib/cgroup.c get_cgroup_name), which is what cgget
 * prints; a value the kernel does not have is left out, as vz-rst tests each file for existence.
 */
export const vzSideFiles = [
  'clock_bootbased',
  'clock_monotonic',
  'iptables_mask',
  'os_release',
  'features',
  'aio_max_nr',
  'pid_max',
] as const;

export function writeVzSideFiles(hostRoot: string, ctid: string, imageDir: string): string[] {
  const written: string[] = [];
  for (const name of vzSideFiles) {
    const src = `${hostRoot}/sys/fs/cgroup/ve/${ctid}/ve.${name}`;
    if (!existsSync(src)) continue;
    writeFileSync(join(imageDir, `vz_${name}.img`), readFileSync(src));
    written.push(`vz_${name}.img`);
  }
  return written;
}

/**
 * The CT's own kernel.core_pattern (virtualized per VE, libvzctl 5ebf313), saved beside the dump while criu holds
 * the CT frozen at post-dump (`cgexec -g ve:$VEID cat /proc/sys/kernel/core_pattern > vz_core_pattern.img`,
 * scripts/vz-cpt-action.in 115–116, a failure fails the dump) and written back by vz-rst-action at post-restore when
 * the file is there (vz-rst-action.in 167–169; without it the restored CT keeps the kernel's default). P.Haul saves
 * it after its final dump (p_haul_vz.py 240–245).
 */
export const vzCorePatternImage = 'vz_core_pattern.img';

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
  /** libvzctl's cgroup-props.conf below the host root, when the host has it (vzCgroupPropsConf). */
  cgroupPropsFile?: string;
};

/**
 * The cgroup properties file libvzctl installs with its scripts (`@SCRIPTDIR@` is `$(libexecdir)/libvzctl/scripts`)
 * and vz-cpt passes as `--cgroup-props-file` (vz-cpt.in 39, 123; vz-rst.in 81, 127 on restore): file and options came
 * in one commit (f8a5a16), so a host that has the file has a vz-cpt that passes it. criu fails a dump whose file
 * cannot be opened (criu/cgroup-props.c cgp_parse_file 370–378), hence only when it exists.
 */
export const vzCgroupPropsConf = '/usr/libexec/libvzctl/scripts/cgroup-props.conf';

export const cgroupPropsFile = (hostRoot: string): string | undefined =>
  existsSync(`${hostRoot}${vzCgroupPropsConf}`) ? `${hostRoot}${vzCgroupPropsConf}` : undefined;

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

/*
 * The side files VZ's checkpoint writes beside a dump, one entry each, by when and how VZ reads them:
 * - `before`: read on the host before criu freezes the CT. vz-cpt's ve cgroup values (vz-cpt.in v7.0.360 73–90
 *   `cgget -n -v -r ve.<name> CTID > vz_<name>.img`; vz-rst.in 92–99; P.Haul 228–238), read from the CT's ve cgroup
 *   (`<ve mount>/<ctid>/`, private: lib/cgroup.c get_cgroup_name), which is what cgget prints; a value the kernel
 *   does not have is left out, as vz-rst tests each file for existence. And the memory limits vz-cpt-action saves
 *   at criu's pre-dump action (vz-cpt-action.in 98–103, `cat /sys/fs/cgroup/memory/machine.slice/$VEID/…`; criu
 *   runs it before freezing, criu/cr-dump.c 2162), whose failure fails the dump; since libvzctl afa1f9b nothing
 *   reads them back (vzctl restore sets the limits from the CT's config), so they are only kept beside the dump.
 * - `post-dump`: the CT's own sysctls (virtualized per VE), read in its ve cgroup while criu holds it frozen at
 *   post-dump (`cgexec -g ve:$VEID cat /proc/sys/<…> > vz_<…>.img`, vz-cpt-action.in 115–124; a failure fails the
 *   dump; fs.fsync-enable only when the host has /proc/sys/fs/fsync-enable). vz-rst-action writes each back at
 *   post-restore when its file is there (vz-rst-action.in 167–179; fsync-enable again only when the host has it),
 *   failing the restore when the write fails; without the file the restored CT keeps the kernel's value.
 */
export type VzSideFile =
  | { image: string; at: 'before'; hostPath: (ctid: string) => string; ifMissing: 'skip' | 'fail' }
  | { image: string; at: 'post-dump'; veProc: string; onlyIfHost?: string };

const veCgroupValue = (name: string): VzSideFile => ({
  image: `vz_${name}.img`,
  at: 'before',
  hostPath: (ctid) => `/sys/fs/cgroup/ve/${ctid}/ve.${name}`,
  ifMissing: 'skip',
});
const memoryLimit = (file: string): VzSideFile => ({
  image: `vz_${file.replaceAll('.', '_')}.img`,
  at: 'before',
  hostPath: (ctid) => `/sys/fs/cgroup/memory/machine.slice/${ctid}/${file}`,
  ifMissing: 'fail',
});

export const vzSideFiles: readonly VzSideFile[] = [
  ...[
    'clock_bootbased',
    'clock_monotonic',
    'iptables_mask',
    'os_release',
    'features',
    'aio_max_nr',
    'pid_max',
  ].map(veCgroupValue),
  memoryLimit('memory.limit_in_bytes'),
  memoryLimit('memory.memsw.limit_in_bytes'),
  { image: 'vz_core_pattern.img', at: 'post-dump', veProc: '/proc/sys/kernel/core_pattern' },
  {
    image: 'vz_fsync-enable.img',
    at: 'post-dump',
    veProc: '/proc/sys/fs/fsync-enable',
    onlyIfHost: '/proc/sys/fs/fsync-enable',
  },
  { image: 'vz_odirect_enable.img', at: 'post-dump', veProc: '/proc/sys/fs/odirect_enable' },
  { image: 'vz_randomize_va_space.img', at: 'post-dump', veProc: '/proc/sys/kernel/randomize_va_space' },
];

/** The `before` side files, read on the host below its root; a missing `fail` one throws. Returns the names written. */
export function writeVzSideFiles(hostRoot: string, ctid: string, imageDir: string): string[] {
  const written: string[] = [];
  for (const f of vzSideFiles) {
    if (f.at !== 'before') continue;
    const src = `${hostRoot}${f.hostPath(ctid)}`;
    if (!existsSync(src)) {
      if (f.ifMissing === 'skip') continue;
      throw new Error(`cannot save ${f.image}: ${f.hostPath(ctid)} does not exist`);
    }
    writeFileSync(join(imageDir, f.image), readFileSync(src));
    written.push(f.image);
  }
  return written;
}

/** The `post-dump` side files this host saves: each a sysctl read in the CT's ve cgroup (tools.ts cgexecCatAll). */
export const vzPostDumpFiles = (hostRoot: string): { image: string; veProc: string }[] =>
  vzSideFiles.flatMap((f) =>
    f.at === 'post-dump' && (!f.onlyIfHost || existsSync(`${hostRoot}${f.onlyIfHost}`))
      ? [{ image: f.image, veProc: f.veProc }]
      : [],
  );

/**
 * Whether libvzctl manages this host's CTs' memory through vcmmd (lib/vcmm.c is_managed_by_vcmmd 196–203):
 * /usr/sbin/vcmmdctl exists and /sys/fs/cgroup is not a cgroup v2 mount (lib/cgroup.c init_cgroups 90–96, read here
 * from the host's /proc/self/mountinfo).
 */
export function managedByVcmmd(hostRoot: string): boolean {
  if (!existsSync(`${hostRoot}/usr/sbin/vcmmdctl`)) return false;
  const info = `${hostRoot}/proc/self/mountinfo`;
  if (!existsSync(info)) return true;
  return !readFileSync(info, 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === '/sys/fs/cgroup' && l.split(' - ')[1]?.startsWith('cgroup2 '));
}

import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ToolExit, type EmuEnv } from '../lib/emu-env.ts';
import { readRegistry } from '../ploop/devices.ts';
import { partitionDevNumber } from '../ploop/sysfs.ts';
import { bindMounts, diskEntries, type CtConf } from '../vzctl/config.ts';
import { chainTo, imagePath, readDescriptor } from '../ploop/descriptor.ts';

/*
 * What a dump of a Virtuozzo container needs beyond a plain process tree (VZ mode, on unless the node was made with
 * `haul-emu create-node --plain-criu`). The pieces are the ones libvzctl's vz-cpt passes (OpenVZ/libvzctl@ebbfc38
 * scripts/vz-cpt.in lines 41–68, 116–137; VZ7's v7.0.360 lines 34–60, 121–138) and P.Haul's vz module
 * (checkpoint-restore/p.haul@02199d8 phaul/p_haul_vz.py lines 152–187). Where upstream criu
 * (checkpoint-restore/criu@2cf8f13) fails without a piece, the emulator fails with its message; where only VZ's own
 * tools would notice later (a restore into the wrong root, a CT whose tasks were seized one by one), the refusal
 * says it is the emulator's.
 */

const refuse = (file: string, msg: string) => new ToolExit(1, `Error (${file}): ${msg}`);
const values = (opts: Map<string, string[]>, k: string) => opts.get(k) ?? [];

/** pre-dump and dump: the CT's tasks are frozen through its freezer cgroup (vz-cpt.in 126, p_haul_vz.py 179). */
export function checkFreezeCgroup(opts: Map<string, string[]>, pid: number): void {
  const cg = values(opts, '--freeze-cgroup').at(-1);
  if (cg === undefined)
    throw refuse(
      'emulator, VZ mode',
      `task ${pid} is a container's init: its tasks must be frozen through the CT's freezer cgroup (--freeze-cgroup), as vz-cpt and P.Haul do`,
    );
  if (!existsSync(join(cg, 'freezer.state')) && !existsSync(join(cg, 'cgroup.freeze')))
    throw refuse(
      'criu/seize.c:1043',
      'Neither a cgroupv1 (freezer.state) or cgroupv2 (cgroup.freeze) control file found.',
    );
  const tasks = existsSync(join(cg, 'tasks')) ? readFileSync(join(cg, 'tasks'), 'utf8').split('\n') : [];
  if (!tasks.includes(String(pid)))
    throw refuse(
      'emulator, VZ mode',
      `the freezer cgroup ${cg} does not hold task ${pid}: not this CT's cgroup`,
    );
}

/** dump: the root, the external devices (with their /dev/<uuid> map), the bind and cgroup mounts. */
export function checkVzDump(env: EmuEnv, conf: CtConf, opts: Map<string, string[]>): void {
  const root = values(opts, '-r').at(-1);
  if (root !== conf.veRoot)
    throw refuse(
      'emulator, VZ mode',
      root === undefined
        ? `--root is missing: the CT's mount namespace is restored into VE_ROOT (${conf.veRoot}) by vz-rst, which needs the dump taken with it (vz-cpt.in 125)`
        : `--root ${root} is not the CT's VE_ROOT ${conf.veRoot}`,
    );
  const maps = values(opts, '-M').map((m) => m.slice(0, m.indexOf(':')));
  checkDevices(env, conf, values(opts, '--external'));
  for (const b of bindMounts(conf))
    if (!maps.includes(b.dst))
      throw refuse('criu/mount.c:753', `mnt: ${mountId(b.dst)}:.${b.dst} doesn't have a proper root mount`);
  for (const mp of cgroupMounts(env))
    if (!maps.includes(mp))
      throw refuse('criu/mount.c:753', `mnt: ${mountId(mp)}:.${mp} doesn't have a proper root mount`);
}

/**
 * Each secondary ploop disk mounted in the CT is an ext4 file system criu cannot dump (not in criu/filesystems.c):
 * it must be named external by its partition's device number (`dev[<major>/<minor>]:<uuid>`, vz-cpt.in 67), after
 * the CT got its `/dev/<uuid>` link to the partition (libvzctl lib/cr_criu.c create_ploop_dev_map, lines 49–81).
 */
function checkDevices(env: EmuEnv, conf: CtConf, externals: string[]): void {
  const reg = readRegistry(env.clusterDir);
  for (const d of diskEntries(conf)) {
    if (!d.enabled || !d.mnt || d.mnt === '/') continue;
    const base = imagePath(d.dd, chainTo(readDescriptor(d.dd))[0]!.file);
    const dev = reg.devices.find((x) => x.node === env.node && x.deltas[0] === base);
    if (!dev) continue;
    const { major, minor } = partitionDevNumber(dev.dev);
    if (!externals.includes(`dev[${major}/${minor}]:${d.uuid}`)) {
      const sdev = ((major << 20) | minor).toString(16);
      throw refuse(
        'criu/mount.c:724',
        `mnt: FS mnt .${d.mnt} dev 0x${sdev} root / unsupported id ${mountId(d.mnt)}`,
      );
    }
    const link = join(conf.veRoot, 'dev', d.uuid);
    if (!isLink(link))
      throw refuse(
        'emulator, VZ mode',
        `the CT has no /dev/${d.uuid} for ${dev.dev}p1: libvzctl creates it before every dump (vzctl suspend --create-devmap)`,
      );
  }
}

/** The CT-visible cgroup mounts of this node (not the private ve and beancounter ones), unless it has cgroup ns. */
export function cgroupMounts(env: EmuEnv): string[] {
  const info = join(env.root, 'proc', 'self', 'mountinfo');
  if (existsSync(join(env.root, 'proc', 'self', 'ns', 'cgroup')) || !existsSync(info)) return [];
  return readFileSync(info, 'utf8')
    .split('\n')
    .map((l) => l.split(' - '))
    .filter(([, tail]) => tail?.startsWith('cgroup '))
    .filter(([, tail]) => !/(^|,)(ve|beancounter)(,|$)/.test(tail!.split(' ')[2] ?? ''))
    .map(([head]) => head!.split(' ')[4]!);
}

const mountId = (path: string) => 100 + [...path].reduce((a, c) => (a * 31 + c.charCodeAt(0)) % 900, 0);

const isLink = (p: string) => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};

/** VZ mode is the default; `create-node --plain-criu` turns it off for tests of plain process trees. */
export const vzMode = (env: EmuEnv): boolean => env.vzCheckpoint !== false;

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One emulated node's settings, written by `haul-emu create-node` into `$HAUL_EMU_ROOT/etc/haul-emu.json`. */
export type NodeConfig = {
  node: string;
  /** Folder shared by all emulated nodes of one cluster: device registry, locks, corruption log. */
  clusterDir: string;
  criuVersion: string;
  memTrack: boolean;
  cpuFlags: string[];
  /** criu dumps CTs as on a Virtuozzo host, requiring VZ's pieces (criu/vz.ts); false: `create-node --plain-criu`. */
  vzCheckpoint?: boolean;
};

export type EmuEnv = NodeConfig & { root: string };

/** Exit with a usage/config error the way a host tool would: message on stderr, non-zero status. */
export class ToolExit extends Error {
  readonly exitCode: number;
  readonly stdout: string[];
  constructor(exitCode: number, message: string, stdout: string[] = []) {
    super(message);
    this.name = 'ToolExit';
    this.exitCode = exitCode;
    this.stdout = stdout;
  }
}

export function emuEnv(env: NodeJS.ProcessEnv = process.env): EmuEnv {
  const root = env['HAUL_EMU_ROOT'];
  if (!root)
    throw new ToolExit(
      3,
      'HAUL_EMU_ROOT is not set: it names the emulated node root (see host-emulators/README.md)',
    );
  let cfg: NodeConfig;
  try {
    cfg = JSON.parse(readFileSync(join(root, 'etc', 'haul-emu.json'), 'utf8')) as NodeConfig;
  } catch (err) {
    throw new ToolExit(
      3,
      `${root} is not an emulated node (no etc/haul-emu.json): ${(err as Error).message}`,
    );
  }
  return { ...cfg, root };
}

export const paths = {
  vzConf: (e: EmuEnv) => join(e.root, 'etc', 'vz', 'vz.conf'),
  ctConf: (e: EmuEnv, ctid: string) => join(e.root, 'etc', 'vz', 'conf', `${ctid}.conf`),
  initPid: (e: EmuEnv, ctid: string) => join(e.root, 'var', 'run', 've', `${ctid}.init.pid`),
  ctState: (e: EmuEnv, ctid: string) => join(e.root, 'var', 'lib', 'haul-emu', 'cts', `${ctid}.json`),
  ctSocket: (e: EmuEnv, ctid: string) => join(e.root, 'var', 'run', 'haul-emu', `ct-${ctid}.sock`),
  /**
   * The CT's freezer cgroup (cgroup v1, as on VZ7): `<mount>/machine.slice/<ctid>/` (libvzctl lib/cgroup.c
   * get_cgroup_name, ebbfc38 lines 419–428), with `freezer.state` and `tasks` kept by the emulated CT.
   */
  freezerCg: (e: EmuEnv, ctid: string) =>
    join(e.root, 'sys', 'fs', 'cgroup', 'freezer', 'machine.slice', ctid),
  /**
   * The CT's ve cgroup (private: `<mount>/<ctid>`, libvzctl lib/cgroup.c get_cgroup_name), kept by the emulated CT:
   * the values vz-cpt saves beside a dump; cgexec -g ve:<ctid> needs it to exist.
   */
  veCg: (e: EmuEnv, ctid: string) => join(e.root, 'sys', 'fs', 'cgroup', 've', ctid),
  /** The CT's memory cgroup (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`; vz-cpt-action.in 98–103). */
  memoryCg: (e: EmuEnv, ctid: string) => join(e.root, 'sys', 'fs', 'cgroup', 'memory', 'machine.slice', ctid),
  /**
   * The CT's VE-virtualized sysctls as the emulated kernel keeps them (`kernel.core_pattern`: each VE has its own,
   * libvzctl 5ebf313), one file per name; the VE is made with the kernel's defaults when its init starts.
   */
  veSysctl: (e: EmuEnv, ctid: string, name: string) =>
    join(e.root, 'var', 'lib', 'haul-emu', 've', ctid, name),
  devices: (clusterDir: string) => join(clusterDir, 'devices.json'),
  corruption: (clusterDir: string) => join(clusterDir, 'corruption.jsonl'),
  locks: (clusterDir: string) => join(clusterDir, 'locks'),
};

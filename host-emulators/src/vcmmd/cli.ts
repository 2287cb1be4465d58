import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ToolExit, emuEnv, paths, type EmuEnv } from '../lib/emu-env.ts';
import { acquireLock } from '../lib/lock.ts';
import { out } from '../lib/tool.ts';

/*
 * The node's vcmmd (VZ's memory manager daemon, OpenVZ/vcmmd@4dec0d4) and its `vcmmdctl` client. libvzctl registers a
 * CT with vcmmd when it starts or restores it and unregisters it when it stops or is dumped (lib/env_nsops.c 566–577,
 * 1178, 1457; lib/cr_criu.c chkpnt 254–256; lib/vcmm.c 205–240), through libvcmmd's D-Bus calls, and only where
 * /usr/sbin/vcmmdctl exists and the host is not on cgroup v2 (is_managed_by_vcmmd, vcmm.c 196–203). The emulated
 * vzctl keeps the registrations here (`<root>/var/lib/haul-emu/vcmmd.json`); an emulated node has vcmmd installed
 * (`<root>/usr/sbin/vcmmdctl`, removed to emulate a host without it). The emulated vcmmdctl answers `unregister
 * <VE name>` (cli.py _handle_unregister 179–191: an unknown VE is only logged by the daemon, ldmgr/base.py 271–276)
 * and `list -j` (cli.py _handle_list 233–280, the JSON form), and refuses anything else.
 */

type VeRecord = {
  type: string;
  active: boolean;
  guarantee: number;
  limit: number;
  swap: number;
  cache: number;
  cpunum: number;
};

const installed = (env: EmuEnv) => join(env.root, 'usr', 'sbin', 'vcmmdctl');
const registry = (env: EmuEnv) => join(env.root, 'var', 'lib', 'haul-emu', 'vcmmd.json');

/** is_managed_by_vcmmd (lib/vcmm.c 196–203): vcmmdctl installed and /sys/fs/cgroup not a cgroup2 mount. */
export function managedByVcmmd(env: EmuEnv): boolean {
  if (!existsSync(installed(env))) return false;
  const info = join(env.root, 'proc', 'self', 'mountinfo');
  const v2 =
    existsSync(info) &&
    readFileSync(info, 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === '/sys/fs/cgroup' && l.split(' - ')[1]?.startsWith('cgroup2 '));
  return !v2;
}

export function readVcmmd(env: EmuEnv): Record<string, VeRecord> {
  const f = registry(env);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record<string, VeRecord>) : {};
}

function writeVcmmd(env: EmuEnv, ves: Record<string, VeRecord>): void {
  const f = registry(env);
  mkdirSync(dirname(f), { recursive: true });
  writeFileSync(`${f}.${process.pid}`, JSON.stringify(ves, null, 2) + '\n');
  renameSync(`${f}.${process.pid}`, f);
}

/**
 * Change the node's registrations: read, change and write back under the node's vcmmd lock. vcmmd is one daemon that
 * takes one request at a time; without the lock two tools changing different CTs' registrations at once (a vzctl
 * restore beside another CT's vcmmdctl unregister) would each write back what it read, and one change would be lost.
 */
function changeVcmmd(env: EmuEnv, change: (ves: Record<string, VeRecord>) => boolean): void {
  const release = acquireLock(paths.locks(env.clusterDir), `vcmmd:${registry(env)}`, 30_000);
  if (!release) throw new Error('vcmmd: the registration lock timed out');
  try {
    const ves = readVcmmd(env);
    if (change(ves)) writeVcmmd(env, ves);
  } finally {
    release();
  }
}

/** vcmm_register (vcmm.c 220–240; a name already in use is unregistered and registered again), when managed. */
export function vcmmRegister(env: EmuEnv, ctid: string, limitBytes: number): void {
  if (!managedByVcmmd(env)) return;
  changeVcmmd(env, (ves) => {
    ves[ctid] = { type: 'CT', active: true, guarantee: 0, limit: limitBytes, swap: 0, cache: -1, cpunum: 0 };
    return true;
  });
}

/** vcmm_unregister (vcmm.c 205–218): a VE that is not registered is no error. */
export function vcmmUnregister(env: EmuEnv, ctid: string): void {
  if (!managedByVcmmd(env)) return;
  changeVcmmd(env, (ves) => ctid in ves && delete ves[ctid]);
}

const usage = 'Usage: vcmmdctl <command> <args>...';

/** optparse's parser.error: the usage, then `<prog>: error: <msg>`, exit 2. */
const optError = (u: string, msg: string) => new ToolExit(2, `${u}\n\nvcmmdctl: error: ${msg}`);

export function vcmmdctlMain(argv: string[]): number {
  const env = emuEnv();
  if (!existsSync(installed(env))) throw new ToolExit(127, 'vcmmdctl: command not found');
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw optError(usage, 'command not specified');
  if (cmd === 'unregister') {
    const u = 'Usage: vcmmdctl unregister <VE name>';
    if (args.length > 1) throw optError(u, 'superfluous arguments');
    if (args.length < 1) throw optError(u, 'VE name not specified');
    const name = args[0]!;
    changeVcmmd(env, (ves) => name in ves && delete ves[name]);
    return 0;
  }
  if (cmd === 'list' && args.length === 1 && args[0] === '-j') {
    const ves = readVcmmd(env);
    const data = Object.keys(ves)
      .sort()
      .map((name) => ({ ...ves[name]!, name }))
      .map((r) => Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1))));
    out(JSON.stringify(data, null, 4));
    return 0;
  }
  throw new ToolExit(
    1,
    `Error (emulator): vcmmdctl ${argv.join(' ')}: only \`unregister <VE name>\` and \`list -j\` are emulated`,
  );
}

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ToolExit, emuEnv, type EmuEnv } from '../lib/emu-env.ts';
import { GetoptError, out, err, parseOpts, type ParsedOpts } from '../lib/tool.ts';
import {
  VZ_INVALID_PARAMETER_SYNTAX,
  VZ_INVALID_PARAMETER_VALUE,
  vzctlGlobal,
  vzctlParse,
  vzctlUsage,
  vzctlVersion,
} from './options.ts';
import { mount as ploopMount, umount as ploopUmount } from '../ploop/ops.ts';
import { ctRequest, type CtConfig } from '../container/protocol.ts';
import { launchContainer } from '../container/launch.ts';
import { paths } from '../lib/emu-env.ts';
import { readRegistry } from '../ploop/devices.ts';
import { chainTo, imagePath } from '../ploop/descriptor.ts';
import { cgroupMounts, vzMode } from '../criu/vz.ts';
import { setVeSysctl, veSysctls } from '../cgexec/cli.ts';
import { vcmmRegister, vcmmUnregister } from '../vcmmd/cli.ts';
import { partitionDevNumber } from '../ploop/sysfs.ts';
import { bindMounts, diskEntries, readCtConf, readGlobalConf, type CtConf } from './config.ts';
import { lockCt, lockStatus } from './ct-lock.ts';
import { ctidOf, parseCtid } from './ctid.ts';
import { register, unregister, type RegisterOptions } from './registration.ts';
import { layoutLink, layoutVersion, ploopLayout } from './layout.ts';
import { runActionScripts, skipAction } from './action-scripts.ts';
import { ctRuns, diskBases, isRunning, mountedDisks, readCtState, writeCtState } from './ct-state.ts';
import { processRunning } from '../lib/process.ts';
import { readDescriptor } from '../ploop/descriptor.ts';
import { childProcess } from '../lib/lazy.ts';

const actions = [
  'start',
  'stop',
  'mount',
  'umount',
  'status',
  'suspend',
  'restore',
  'register',
  'unregister',
];

/**
 * `vzctl [--quiet|--verbose] [--skiplock] [--skipowner] [--ignore-ha-cluster] <action> <ctid> [options]`, and
 * `vzctl register <path> <ctid> [options]` (host-tools.md §3, §6; vzctl.c main).
 */
export async function vzctlMain(argv: string[]): Promise<number> {
  const { index: i, skiplock, skipowner, answer } = skipGlobalOptions(argv);
  if (answer !== undefined) {
    out(answer);
    return 0;
  }
  const action = argv[i];
  if (!action) throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, '', [vzctlUsage]);
  if (!actions.includes(action)) throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, `Bad command: ${action}`);
  // register names the private area first, then the ctid (main shifts argv past the path).
  const path = action === 'register' ? argv[i + 1] : undefined;
  if (action === 'register' && path === undefined)
    throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, 'Usage: vzctl register <path>');
  const at = action === 'register' ? i + 2 : i + 1;
  const given = argv[at];
  // `vzctl register <path>` alone is whole: libvzctl makes up a UUID ctid (main: `argc == 2` → skip_eid).
  if (action === 'register' && given === undefined)
    return register(emuEnv(), path!, undefined, { force: skipowner });
  if (given === undefined) throw new ToolExit(VZ_INVALID_PARAMETER_VALUE, 'ctid is not given');
  const ctid = parseCtid(given);
  const guid: { last?: string } = {};
  const { opts } = parseActionOptions(
    action,
    given,
    argv.slice(at + 1),
    action === 'register' ? (k, v) => registerGuid(k, v, guid) : undefined,
  );
  const env = emuEnv();
  if (action === 'register') return register(env, path!, ctid, registerOptions(opts, skipowner, guid.last));
  const conf = readCtConf(env, ctid);
  if (!conf && !['stop', 'status'].includes(action))
    throw new ToolExit(14, 'Container configuration file does not exist');
  // The CT lock for the actions vzctl locks (main: "Cannot lock the Container"), unless --skiplock.
  const status = lockStatus[action];
  const unlock =
    status && !skiplock ? lockCt(readGlobalConf(env)['LOCKDIR'] ?? '/vz/lock', ctid, status) : undefined;
  try {
    return await runAction(env, action, ctid, conf, opts);
  } finally {
    unlock?.();
  }
}

async function runAction(
  env: EmuEnv,
  action: string,
  ctid: string,
  conf: CtConf | undefined,
  opts: Map<string, string[]>,
): Promise<number> {
  switch (action) {
    case 'status':
      out(statusLine(env, ctid, conf));
      return 0;
    case 'start':
      return start(env, conf!);
    case 'stop':
      return stop(env, ctid, conf, { skipUmount: opts.has('--skip-umount'), fast: opts.has('--fast') });
    case 'mount':
      return mountCt(env, conf!);
    case 'umount':
      return umountCt(env, conf!);
    case 'suspend':
      if (opts.has('--create-devmap')) return createDevmap(env, conf!);
      return suspend(env, conf!, opts.get('--dumpfile')?.at(-1));
    case 'restore':
      return restore(env, conf!, opts.get('--dumpfile')?.at(-1));
    case 'unregister':
      return unregisterCt(env, conf!);
    default:
      throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, `Bad command: ${action}`);
  }
}

/** Where the action is, and whether --skiplock came before it; `answer` when --help or --version ends the run. */
function skipGlobalOptions(argv: string[]): {
  index: number;
  skiplock: boolean;
  skipowner: boolean;
  answer?: string;
} {
  let i = 0;
  let skiplock = false;
  let skipowner = false;
  const stop = (answer?: string) => ({ index: i, skiplock, skipowner, ...(answer ? { answer } : {}) });
  for (;;) {
    const a = argv[i];
    if (a === undefined) return stop();
    if (a === '--skiplock') skiplock = true;
    if (a === '--skipowner') skipowner = true;
    const prefixed = vzctlGlobal.prefix.some((p) => a.startsWith(p));
    if (!prefixed && a.startsWith(vzctlGlobal.help)) return stop(vzctlUsage);
    if (!prefixed && a.startsWith(vzctlGlobal.version)) return stop(vzctlVersion);
    if (prefixed || vzctlGlobal.exact.includes(a)) i++;
    else if (vzctlGlobal.withValue.includes(a)) {
      if (argv[i + 1] === undefined || !/^\d+$/.test(argv[i + 1]!))
        throw new ToolExit(1, `An incorrect value '${argv[i + 1] ?? '(null)'}' for ${a} is specified`);
      i += 2;
    } else return stop();
  }
}

/**
 * register's --uuid/--id as ParseRegisterOptions meets them (src/vzctl.c 966–975), in order: read as a ctid, or
 * refused where it stands ("Invalid guid is specified", 20), the options after it unread; the last one given wins.
 */
function registerGuid(key: string, value: string, guid: { last?: string }): undefined {
  if (key !== '--uuid' && key !== '--id') return undefined;
  const ctid = ctidOf(value);
  if (ctid === undefined)
    throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, `Invalid guid is specified: ${value}`);
  guid.last = ctid;
  return undefined;
}

/**
 * The rest of register's options (ParseRegisterOptions, src/vzctl.c 943–983): --force, or the global --skipowner
 * (main 1857). --renew and --skip_cluster change nothing here (the owner check and the HA cluster apply to shared
 * private areas only); CT names and --start are not emulated, and refused as such rather than ignored.
 */
function registerOptions(
  opts: Map<string, string[]>,
  skipowner: boolean,
  uuid: string | undefined,
): RegisterOptions {
  for (const o of ['--name', '--start'])
    if (opts.has(o))
      throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, `Error (emulator): register ${o} is not emulated`);
  return { force: skipowner || opts.has('--force'), ...(uuid !== undefined ? { uuid } : {}) };
}

/**
 * What vzctl does with the words after the ctid, per action (options.ts). getopt names the program after its
 * argv[0], which vzctl has shifted to the ctid as given (`0101`, not 101), hence "<ctid>: unrecognized option".
 */
function parseActionOptions(
  action: string,
  ctid: string,
  rest: string[],
  onOption?: (key: string, value: string) => undefined,
): ParsedOpts {
  const how = vzctlParse[action];
  if (!how || how.kind === 'ignore') return { opts: new Map(), args: rest };
  if (how.kind === 'none') {
    if (rest.length > 0)
      throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, `Invalid options: ${rest.join(' ')} `);
    return { opts: new Map(), args: [] };
  }
  let parsed: ParsedOpts;
  try {
    parsed = parseOpts(how.table, rest, onOption);
  } catch (e) {
    if (e instanceof GetoptError) throw new ToolExit(how.onUnknown, `${ctid}: ${e.message}`);
    throw e;
  }
  if (how.checkTail && parsed.args.length > 0) {
    throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, '', [
      `non-option ARGV-elements: ${parsed.args.join(' ')} `,
    ]);
  }
  return parsed;
}

/**
 * `VEID <ctid> exist|deleted mounted|unmounted running|paused|down|suspended` (src/vzctl.c Show, OpenVZ/vzctl@42ab7b3
 * lines 1461–1470). A running CT whose freezer cgroup is FROZEN is `paused` (libvzctl lib/env_nsops.c
 * ns_env_get_cpt_state, ebbfc38 lines 1830–1845): after `vzctl pause`, or while criu holds it frozen. A CT that
 * exists, does not run and has a dump at the default place is `suspended` (lib/vz.c vzctl2_get_env_status_info
 * 421–426, ebbfc38): after `vzctl suspend` without --dumpfile. `mounted` is its root disk's (ctMounted; 403–406).
 */
function statusLine(env: EmuEnv, ctid: string, conf: CtConf | undefined): string {
  const exist = conf ? 'exist' : 'deleted';
  const mounted = conf && ctMounted(env, conf) ? 'mounted' : 'unmounted';
  const state = isRunning(env, ctid)
    ? freezerState(env, ctid) === 'FROZEN'
      ? 'paused'
      : 'running'
    : conf && existsSync(defaultDump(conf))
      ? 'suspended'
      : 'down';
  return `VEID ${ctid} ${exist} ${mounted} ${state}`;
}

/** What `vzctl status <ctid>` prints on `env`'s node, without a process of its own (a ctid as vzctl prints it). */
export const ctStatus = (env: EmuEnv, ctid: string): string => statusLine(env, ctid, readCtConf(env, ctid));

function freezerState(env: EmuEnv, ctid: string): string | undefined {
  const f = `${paths.freezerCg(env, ctid)}/freezer.state`;
  return existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined;
}

/** The CT is mounted: its root disk is (vzctl2_env_is_mounted for layout 5, libvzctl lib/vz.c 307–330). */
function ctMounted(env: EmuEnv, conf: CtConf): boolean {
  return conf.root !== undefined && mountedDisks(env, conf).includes(conf.root);
}

/**
 * Mount the CT as vzctl2_env_mount does (lib/fs.c 206–262): its premount scripts, every disk (its root disk at
 * VE_ROOT), its mount scripts (action-scripts.ts). A CT mounted already runs no script ("already mounted"); any other
 * disk of it not mounted yet is. libvzctl takes this path for a private area of layout 5 and on, and bind-mounts one
 * below 5 (lib/fs.c do_env_mount 196–202), which the emulator does not do: a CT without `.ve.layout` → 5 (a private
 * area made by hand, or copied without it) is refused with the mount error.
 */
function mountAll(env: EmuEnv, conf: CtConf): void {
  const layout = layoutVersion(conf.vePrivate);
  if (layout < ploopLayout)
    throw new ToolExit(
      50,
      `Error (emulator): ${layoutLink(conf.vePrivate)} ${layout === 0 ? 'is missing' : `says layout ${layout}`}: vzctl would bind-mount ${conf.vePrivate} as a simfs or VZFS CT, which is not emulated (a ploop CT's is 5)`,
    );
  if (ctMounted(env, conf)) return mountDisks(env, conf);
  if (runActionScripts(env, conf, 'premount') !== skipAction) mountDisks(env, conf);
  runMountScripts(env, conf);
}

/** The mount scripts, after the mount: one that fails, or says skip, unmounts the disks again without scripts. */
function runMountScripts(env: EmuEnv, conf: CtConf): void {
  let status: number;
  try {
    status = runActionScripts(env, conf, 'mount');
  } catch (e) {
    umountDisks(env, conf);
    throw e;
  }
  if (status === skipAction) {
    umountDisks(env, conf);
    throw new ToolExit(skipAction, '');
  }
}

function mountDisks(env: EmuEnv, conf: CtConf): void {
  const already = new Set(mountedDisks(env, conf));
  for (const dd of conf.disks) {
    if (already.has(dd)) continue;
    try {
      ploopMount(env, dd, dd === conf.root ? { mountpoint: conf.veRoot } : {});
    } catch (e) {
      throw new ToolExit(152, `Failed to mount image ${dd}: ${(e as Error).message}`);
    }
  }
}

function umountDisks(env: EmuEnv, conf: CtConf): void {
  for (const dd of mountedDisks(env, conf)) ploopUmount(env, { dd });
}

/**
 * Unmount the CT as vzctl2_env_umount does (lib/fs.c 266–310): its umount scripts, every disk, its postumount
 * scripts; a script's skip (39) ends it there, with that status. A CT whose root disk is not mounted is not mounted
 * for vzctl (ctMounted): 40 "Container is not mounted", and any other disk of it still attached stays so (287–292).
 */
function umountAll(env: EmuEnv, conf: CtConf): void {
  if (!ctMounted(env, conf)) throw new ToolExit(40, 'Container is not mounted');
  if (runActionScripts(env, conf, 'umount') === skipAction) throw new ToolExit(skipAction, '');
  umountDisks(env, conf);
  if (runActionScripts(env, conf, 'postumount') === skipAction) throw new ToolExit(skipAction, '');
}

/**
 * An unmount whose failure libvzctl ignores: after a suspend's dump (lib/env.c 1191), before a restore and after a
 * failed one (1298–1299, 1396–1397), after a failed start (1138–1139). Its message is printed; nothing is thrown.
 * All but the suspend's ask vzctl2_env_is_mounted first; a CT that ran has its root disk mounted.
 */
function umountIgnoringFailure(env: EmuEnv, conf: CtConf): void {
  if (!ctMounted(env, conf)) return;
  try {
    umountAll(env, conf);
  } catch (e) {
    if (!(e instanceof ToolExit)) throw e;
    if (e.message) err(e.message);
  }
}

export function ctConfig(conf: CtConf): CtConfig {
  const n = (k: string, d: number) => Number(conf.raw[k] ?? d);
  const size = conf.disks[0] ? readDescriptor(conf.disks[0]).diskSize : 0;
  return {
    ctid: conf.ctid,
    memoryMb: n('HAUL_EMU_MEMORY_MB', 64),
    dirtyPagesPerSec: n('HAUL_EMU_DIRTY_PAGES_PER_SEC', 500),
    diskWritesPerSec: n('HAUL_EMU_DISK_WRITES_PER_SEC', 20),
    seed: n('HAUL_EMU_SEED', 1),
    diskBases: diskBases(conf),
    diskBlocks: Math.max(1, Math.floor((size * 512) / 4096 / 8)),
    // Linux writes dirty pages back once they are older than dirty_expire_centisecs (30 s by default).
    writebackMs: n('HAUL_EMU_WRITEBACK_MS', 30_000),
  };
}

async function start(env: EmuEnv, conf: CtConf): Promise<number> {
  // A CT suspended at the default place is restored from there (src/vzctl.c ACTION_START 2134–2152, at 42ab7b3:
  // vzctl_env_restore without a dump file, src/wrap.c 503–523); only when that fails does it start afresh.
  if (existsSync(defaultDump(conf))) {
    try {
      return await restore(env, conf, undefined);
    } catch (e) {
      if (!(e instanceof ToolExit)) throw e;
      for (const l of e.stdout) out(l);
      if (e.message) err(e.message);
    }
  }
  if (isRunning(env, conf.ctid)) {
    // A paused CT (its freezer FROZEN) is unpaused, not refused: vzctl2_env_start resumes a running CT that is
    // CPT-suspended (libvzctl lib/env.c 974–993 at ebbfc38), whoever froze it.
    if (freezerState(env, conf.ctid) !== 'FROZEN') throw new ToolExit(32, 'Container is already running');
    out('Unpause the Container');
    await ctRequest(paths.ctSocket(env, conf.ctid), { op: 'thaw' });
    out('The Container has been successfully unpaused');
    return 0;
  }
  out('Starting Container ...');
  // A CT mounted already is unmounted first, then mounted again, scripts and all (lib/env.c 1029–1043).
  if (ctMounted(env, conf)) umountAll(env, conf);
  mountAll(env, conf);
  let pid: number;
  try {
    pid = await launchContainer(env, ctConfig(conf));
  } catch (e) {
    vcmmUnregister(env, conf.ctid);
    umountIgnoringFailure(env, conf);
    throw new ToolExit(3, `Failed to start the Container: ${(e as Error).message}`);
  }
  writeCtState(env, conf.ctid, { pid });
  // The CT's memory to vcmmd, where the node has it (lib/env_nsops.c 566–577 → lib/vcmm.c vcmm_register).
  vcmmRegister(env, conf.ctid, ctConfig(conf).memoryMb * 1024 * 1024);
  // Started afresh, the CT no longer has a suspended state to go back to (lib/env.c vzctl_env_start 1120–1121).
  rmSync(defaultDump(conf), { recursive: true, force: true });
  out('Container start in progress...');
  return 0;
}

/**
 * vzctl_env_stop (libvzctl lib/env.c): the CT halted from inside (M_HALT: its init asked to end, killed when it does
 * not in time), or with `--fast` killed at once (M_KILL: src/vzctl.c 2162, lib/env_nsops.c ns_env_stop 1506–1509
 * skips the halt and kills the CT's tasks).
 */
async function stop(
  env: EmuEnv,
  ctid: string,
  conf: CtConf | undefined,
  o: { skipUmount: boolean; fast: boolean },
): Promise<number> {
  const st = readCtState(env, ctid);
  if (!ctRuns(st)) {
    err('Container is not running');
    return 0;
  }
  out('Stopping the Container ...');
  const halted =
    !o.fast &&
    (await ctRequest(paths.ctSocket(env, ctid), { op: 'exit' }, 10_000).then(
      () => true,
      () => false,
    ));
  if (!halted) process.kill(st.pid!, 'SIGKILL');
  await waitExit(st.pid!);
  writeCtState(env, ctid, {});
  // ns_env_cleanup: vcmmd forgets the CT (lib/env_nsops.c 1457).
  vcmmUnregister(env, ctid);
  out('Container was stopped');
  // A CT without its root disk on this node runs in the emulator from its memory alone, which vzctl cannot: it has
  // nothing to unmount.
  if (!o.skipUmount && conf?.root !== undefined) {
    umountAll(env, conf);
    out('Container is unmounted');
  }
  return 0;
}

/** Wait until a process is gone (it is not our child, so poll its existence). */
async function waitExit(pid: number): Promise<void> {
  for (let n = 0; processRunning(pid) && n < 2000; n++) await new Promise((r) => setTimeout(r, 5));
}

function mountCt(env: EmuEnv, conf: CtConf): number {
  if (mountedDisks(env, conf).length === conf.disks.length) {
    out('Container is already mounted');
    return 0;
  }
  mountAll(env, conf);
  out('Container is mounted');
  return 0;
}

function umountCt(env: EmuEnv, conf: CtConf): number {
  if (isRunning(env, conf.ctid)) throw new ToolExit(32, 'Unable to unmount running Container: stop it first');
  umountAll(env, conf);
  out('Container is unmounted');
  return 0;
}

/** vzctl2_env_unreg: a running CT is refused (VZCTL_E_ENV_RUN), a mounted one unmounted first. */
function unregisterCt(env: EmuEnv, conf: CtConf): number {
  if (isRunning(env, conf.ctid))
    throw new ToolExit(32, 'Container is running, Stop Container before proceeding.');
  try {
    // lib/vz.c vzctl2_env_unreg 1157–1162: only a CT mounted for vzctl (its root disk) is unmounted; a failed
    // unmount is VZCTL_E_FS_MOUNTED, whatever its own error was.
    if (ctMounted(env, conf)) umountAll(env, conf);
  } catch (e) {
    if (e instanceof ToolExit)
      throw new ToolExit(41, 'Container is mounted, Unmount Container before proceeding.');
    throw e;
  }
  return unregister(env, conf.ctid, conf.vePrivate);
}

/**
 * Where `vzctl suspend` and `vzctl restore` keep the dump without --dumpfile: `<VE_PRIVATE>/dump/Dump` on a CT of
 * layout 4 and later, VZ7's (libvzctl lib/util.c vzctl2_get_dump_file 1195–1219, lib/vztypes.h 48–49, ebbfc38).
 */
const defaultDump = (conf: CtConf) => `${conf.vePrivate}/dump/Dump`;

async function suspend(env: EmuEnv, conf: CtConf, dumpDir: string | undefined): Promise<number> {
  const st = readCtState(env, conf.ctid);
  if (!ctRuns(st)) throw new ToolExit(31, 'Container is not running');
  const dir = dumpDir ?? defaultDump(conf);
  out('Setting up checkpoint...');
  createDevmap(env, conf);
  // vz-cpt-action saves the CT's clocks and memory limits (pre-dump, vz-cpt-action.in 94–103; a file it cannot read
  // fails the action script, so criu fails the dump) and its own sysctls (post-dump, 115–124; fs.fsync-enable only
  // when the host has it) beside the dump.
  mkdirSync(dir, { recursive: true });
  const veCg = paths.veCg(env, conf.ctid);
  for (const [from, image, what] of [
    ...vzClocks.map((c) => [join(veCg, c), vzClockImage(c), c] as const),
    [
      join(paths.memoryCg(env, conf.ctid), 'memory.limit_in_bytes'),
      'vz_memory_limit_in_bytes.img',
      'memory limit in bytes',
    ],
    [
      join(paths.memoryCg(env, conf.ctid), 'memory.memsw.limit_in_bytes'),
      'vz_memory_memsw_limit_in_bytes.img',
      'memory swap limit in bytes',
    ],
  ] as const) {
    if (!existsSync(from)) throw new ToolExit(16, `Failed to dump ${what}\nCheckpointing failed`);
    writeFileSync(join(dir, image), readFileSync(from, 'utf8'));
  }
  for (const [proc, name] of Object.entries(veSysctls)) {
    if (!existsSync(paths.veSysctl(env, conf.ctid, name))) continue;
    writeFileSync(join(dir, vzSysctlImage(proc)), readFileSync(paths.veSysctl(env, conf.ctid, name), 'utf8'));
  }
  const { spawnSync } = childProcess();
  const r = spawnSync('criu', ['dump', '-t', String(st.pid), '-D', dir, ...vzCptArgs(env, conf)], {
    encoding: 'utf8',
    env: process.env,
  });
  if (r.status !== 0) throw new ToolExit(16, `Checkpointing failed\n${r.stderr ?? ''}`.trim());
  await waitExit(st.pid!);
  writeCtState(env, conf.ctid, {});
  // chkpnt after the dump: vcmmd forgets the CT (lib/cr_criu.c 254–256; its result ignored).
  vcmmUnregister(env, conf.ctid);
  umountIgnoringFailure(env, conf);
  out('Checkpointing completed successfully');
  return 0;
}

/**
 * `vzctl suspend <ctid> --create-devmap`: only the `/dev/<uuid>` link to each enabled disk's partition inside the
 * running CT (exit 40 when such a disk is not attached), which a dump by another tool needs (src/vzctl.c chkpnt_options line 330; libvzctl lib/cr_criu.c
 * criu_cmd lines 462–472 → create_ploop_dev_map lines 49–81; lib/env.c vzctl_env_chkpnt line 1176).
 */
function createDevmap(env: EmuEnv, conf: CtConf): number {
  if (!isRunning(env, conf.ctid)) throw new ToolExit(31, 'Container is not running');
  const reg = readRegistry(env.clusterDir);
  for (const d of diskEntries(conf)) {
    if (!d.enabled) continue;
    const base = imagePath(d.dd, chainTo(readDescriptor(d.dd))[0]!.file);
    const dev = reg.devices.find((x) => x.node === env.node && x.deltas[0] === base);
    // An enabled disk with no device here: libvzctl looks its device up (cr_criu.c create_ploop_dev_map 55-65 →
    // disk.c update_disk_info 788-795) and fails with VZCTL_E_FS_NOT_MOUNTED, saying nothing.
    if (!dev) throw new ToolExit(40, '');
    const link = join(conf.veRoot, 'dev', d.uuid);
    mkdirSync(dirname(link), { recursive: true });
    rmSync(link, { force: true });
    symlinkSync(`${dev.dev}p1`, link);
  }
  return 0;
}

/** What vz-cpt passes besides the task and folder (scripts/vz-cpt.in, OpenVZ/libvzctl@ebbfc38 lines 41–68, 116–137). */
function vzCptArgs(env: EmuEnv, conf: CtConf): string[] {
  const reg = readRegistry(env.clusterDir);
  const externals = diskEntries(conf).flatMap((d) => {
    const base = imagePath(d.dd, chainTo(readDescriptor(d.dd))[0]!.file);
    const dev = reg.devices.find((x) => x.node === env.node && x.deltas[0] === base);
    if (!d.enabled || !dev) return [];
    const { major, minor } = partitionDevNumber(dev.dev);
    return ['--external', `dev[${major}/${minor}]:${d.uuid}`];
  });
  return [
    '--root',
    conf.veRoot,
    '--freeze-cgroup',
    paths.freezerCg(env, conf.ctid),
    ...cgroupMounts(env).flatMap((mp) => ['--ext-mount-map', `${mp}:${mp.slice(mp.lastIndexOf('/') + 1)}`]),
    ...bindMounts(conf).flatMap((b) => ['--ext-mount-map', `${b.dst}:${b.src}`]),
    ...externals,
    ...cgroupPropsArgs(env),
  ];
}

/** `--cgroup-props-file <scriptdir>/cgroup-props.conf`, which vz-cpt and vz-rst pass where libvzctl installed it. */
function cgroupPropsArgs(env: EmuEnv): string[] {
  const f = join(env.root, 'usr', 'libexec', 'libvzctl', 'scripts', 'cgroup-props.conf');
  return existsSync(f) ? ['--cgroup-props-file', f] : [];
}

/** The side file vz-cpt-action saves a per-VE sysctl in: vz_<last part of its /proc/sys path>.img. */
const vzSysctlImage = (proc: string) => `vz_${proc.slice(proc.lastIndexOf('/') + 1)}.img`;

/** vz-rst exports the saved clocks to the restored CT; without them its monotonic clock jumps (libvzctl 092dd35). */
const vzClocks = ['ve.clock_bootbased', 've.clock_monotonic'] as const;
/** The image vz-cpt-action saves a clock in: vz_<its name without `ve.`>.img (vz-cpt-action.in 94–97). */
const vzClockImage = (clock: (typeof vzClocks)[number]) => `vz_${clock.slice('ve.'.length)}.img`;

async function restore(env: EmuEnv, conf: CtConf, dumpDir: string | undefined): Promise<number> {
  if (isRunning(env, conf.ctid)) throw new ToolExit(32, 'Container is already running');
  const dir = dumpDir ?? defaultDump(conf);
  if (!existsSync(dir)) throw new ToolExit(17, 'Container is not suspended');
  const missing = vzMode(env) ? vzClocks.map(vzClockImage).filter((f) => !existsSync(join(dir, f))) : [];
  if (missing.length > 0)
    throw new ToolExit(
      17,
      `Error (emulator, VZ mode): ${missing.join(', ')} missing from ${dir}: the CT's clocks would go back on restore (vz-rst.in reads them, lines 93–103)\nFailed to restore the Container`,
    );
  out('Restoring the Container ...');
  const vars = restoreExtraArgs(dir);
  const workDir = vars['VE_WORK_DIR'] ?? dir;
  const logName = vars['VE_RESTORE_LOG_PATH'] ?? 'restore.log';
  // A CT mounted already is unmounted first, and mounted unless that failed (lib/env.c 1296–1304).
  umountIgnoringFailure(env, conf);
  if (!ctMounted(env, conf)) mountAll(env, conf);
  const args = [
    'restore',
    `-v${vars['VE_CRIU_LOGLEVEL'] ?? '4'}`,
    '--file-locks',
    '--tcp-established',
    '--evasive-devices',
    '--manage-cgroups',
    ...cgroupPropsArgs(env),
    '--link-remap',
    '--root',
    conf.veRoot,
    '--restore-detached',
    '-D',
    dir,
    '-W',
    workDir,
    '-o',
    logName,
    '--pidfile',
    paths.initPid(env, conf.ctid),
  ];
  const { spawnSync } = childProcess();
  const r = spawnSync('criu', args, { encoding: 'utf8', env: { ...process.env, VEID: conf.ctid } });
  if (r.status !== 0) {
    umountIgnoringFailure(env, conf);
    restoreFailed(resolve(workDir, logName), r.stderr ?? '');
  }
  const pid = Number(readFileSync(paths.initPid(env, conf.ctid), 'utf8').trim());
  writeCtState(env, conf.ctid, { pid });
  // The restored CT's memory to vcmmd, as a start does (vzctl2_apply_param on restore → vcmm_register).
  vcmmRegister(env, conf.ctid, ctConfig(conf).memoryMb * 1024 * 1024);
  await restoreSysctls(env, conf, dir, pid);
  // restore_fin on success (lib/cr_criu.c 324–335): the logs go to <dump dir>.restore, whichever of them exist.
  mkdirSync(`${dir}.restore`, { recursive: true });
  for (const f of ['spfs-manager', 'dump.log', 'restore.log'])
    if (existsSync(join(dir, f))) renameSync(join(dir, f), join(`${dir}.restore`, f));
  // A restore from the default place drops that dump once the CT runs (lib/env.c vzctl_env_restore 1360–1361).
  if (dumpDir === undefined) rmSync(dir, { recursive: true, force: true });
  out('Container was restored successfully');
  return 0;
}

/** The variables a dump folder's `restore-extra-args` sets (VE_WORK_DIR, VE_RESTORE_LOG_PATH, …). */
function restoreExtraArgs(dir: string): Record<string, string> {
  const file = `${dir}/restore-extra-args`;
  const extra = existsSync(file) ? readFileSync(file, 'utf8') : '';
  return Object.fromEntries(
    [...extra.matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')]),
  );
}

/**
 * restore_fin on failure (libvzctl lib/cr_criu.c 311–322): `grep " Error "` of criu's log, to vzctl's stdout, then
 * where the log is; criu itself said nothing on stderr, its log being a file.
 */
function restoreFailed(logFile: string, criuStderr: string): never {
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n') : [];
  for (const line of log.filter((l) => l.includes(' Error '))) out(line);
  throw new ToolExit(
    17,
    `${criuStderr.trim()}\nThe restore log was saved in ${logFile}\nFailed to restore the Container`.trim(),
  );
}

/**
 * vz-rst-action at post-restore: the CT's own sysctls back from the dump, each when the dump has its file; without
 * it the restored VE keeps the kernel's value (vz-rst-action.in 167–179, `[ -f … ] && …`: no error). fs.fsync-enable
 * only when the host has it (170). A failed write fails the action script, so criu kills the restored CT and vzctl
 * restore fails.
 */
async function restoreSysctls(env: EmuEnv, conf: CtConf, dir: string, pid: number): Promise<void> {
  for (const [proc, name] of Object.entries(veSysctls)) {
    const saved = join(dir, vzSysctlImage(proc));
    if (!existsSync(saved) || (name === 'fs.fsync-enable' && !existsSync(join(env.root, proc)))) continue;
    try {
      setVeSysctl(env, conf.ctid, name, readFileSync(saved, 'utf8'));
    } catch {
      process.kill(pid, 'SIGKILL');
      await waitExit(pid);
      writeCtState(env, conf.ctid, {});
      vcmmUnregister(env, conf.ctid); // a failed restore unregisters (lib/env_nsops.c 1178)
      umountIgnoringFailure(env, conf);
      const what = proc.slice(proc.lastIndexOf('/') + 1);
      throw new ToolExit(17, `Failed to restore ${what}\nFailed to restore the Container`);
    }
  }
}

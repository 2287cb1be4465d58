import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { ToolExit, emuEnv, type EmuEnv } from '../lib/emu-env.ts';
import { GetoptError, out, err, parseOpts, type ParsedOpts } from '../lib/tool.ts';
import {
  VZ_INVALID_PARAMETER_SYNTAX,
  VZ_INVALID_PARAMETER_VALUE,
  vzctlGlobal,
  vzctlParse,
  vzctlUsage,
} from './options.ts';
import { mount as ploopMount, umount as ploopUmount } from '../ploop/ops.ts';
import { ctRequest, type CtConfig } from '../container/protocol.ts';
import { launchContainer } from '../container/launch.ts';
import { paths } from '../lib/emu-env.ts';
import { readCtConf, type CtConf } from './config.ts';
import { diskBases, isRunning, mountedDisks, pidAlive, readCtState, writeCtState } from './ct-state.ts';
import { readDescriptor } from '../ploop/descriptor.ts';

const actions = ['start', 'stop', 'mount', 'umount', 'status', 'suspend', 'restore'];

/** `vzctl [--quiet|--verbose] [--skiplock] [--skipowner] <action> <ctid> [options]` (host-tools.md §3, §6). */
export async function vzctlMain(argv: string[]): Promise<number> {
  const i = skipGlobalOptions(argv);
  const action = argv[i];
  if (!action) throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, '', [vzctlUsage]);
  if (!actions.includes(action)) throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, `Bad command: ${action}`);
  const ctid = argv[i + 1];
  if (!ctid || ctid.startsWith('-')) throw new ToolExit(VZ_INVALID_PARAMETER_VALUE, 'ctid is not given');
  const { opts } = parseActionOptions(action, ctid, argv.slice(i + 2));
  const env = emuEnv();
  const conf = readCtConf(env, ctid);
  if (!conf && !['stop', 'status'].includes(action))
    throw new ToolExit(14, 'Container configuration file does not exist');
  switch (action) {
    case 'status':
      return status(env, ctid, conf);
    case 'start':
      return start(env, conf!);
    case 'stop':
      return stop(env, ctid, conf, opts.has('--skip-umount'));
    case 'mount':
      return mountCt(env, conf!);
    case 'umount':
      return umountCt(env, conf!);
    case 'suspend':
      return suspend(env, conf!, opts.get('--dumpfile')?.at(-1));
    case 'restore':
      return restore(env, conf!, opts.get('--dumpfile')?.at(-1));
    default:
      throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, `Bad command: ${action}`);
  }
}

/** Skip the global options before the action; return the action's index. */
function skipGlobalOptions(argv: string[]): number {
  let i = 0;
  for (;;) {
    const a = argv[i];
    if (a === undefined) return i;
    if (vzctlGlobal.prefix.some((p) => a.startsWith(p)) || vzctlGlobal.exact.includes(a)) i++;
    else if (vzctlGlobal.withValue.includes(a)) {
      if (argv[i + 1] === undefined || !/^\d+$/.test(argv[i + 1]!))
        throw new ToolExit(1, `An incorrect value '${argv[i + 1] ?? '(null)'}' for ${a} is specified`);
      i += 2;
    } else return i;
  }
}

/**
 * What vzctl does with the words after the ctid, per action (options.ts). getopt names the program after its
 * argv[0], which vzctl has shifted to the ctid, hence "<ctid>: unrecognized option".
 */
function parseActionOptions(action: string, ctid: string, rest: string[]): ParsedOpts {
  const how = vzctlParse[action];
  if (!how || how.kind === 'ignore') return { opts: new Map(), args: rest };
  if (how.kind === 'none') {
    if (rest.length > 0)
      throw new ToolExit(VZ_INVALID_PARAMETER_SYNTAX, `Invalid options: ${rest.join(' ')} `);
    return { opts: new Map(), args: [] };
  }
  let parsed: ParsedOpts;
  try {
    parsed = parseOpts(how.table, rest);
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

function status(env: EmuEnv, ctid: string, conf: CtConf | undefined): number {
  const exist = conf ? 'exist' : 'deleted';
  const mounted = conf && mountedDisks(env, conf).length > 0 ? 'mounted' : 'unmounted';
  out(`VEID ${ctid} ${exist} ${mounted} ${isRunning(env, ctid) ? 'running' : 'down'}`);
  return 0;
}

function mountAll(env: EmuEnv, conf: CtConf): void {
  const already = new Set(mountedDisks(env, conf));
  for (const dd of conf.disks) {
    if (already.has(dd)) continue;
    try {
      ploopMount(env, dd, dd === conf.disks[0] ? { mountpoint: conf.veRoot } : {});
    } catch (e) {
      throw new ToolExit(152, `Failed to mount image ${dd}: ${(e as Error).message}`);
    }
  }
}

function umountAll(env: EmuEnv, conf: CtConf): void {
  for (const dd of mountedDisks(env, conf)) ploopUmount(env, { dd });
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
  if (isRunning(env, conf.ctid)) throw new ToolExit(32, 'Container is already running');
  out('Starting Container ...');
  mountAll(env, conf);
  let pid: number;
  try {
    pid = await launchContainer(env, ctConfig(conf));
  } catch (e) {
    throw new ToolExit(3, `Failed to start the Container: ${(e as Error).message}`);
  }
  writeCtState(env, conf.ctid, { pid });
  out('Container start in progress...');
  return 0;
}

async function stop(
  env: EmuEnv,
  ctid: string,
  conf: CtConf | undefined,
  skipUmount: boolean,
): Promise<number> {
  const st = readCtState(env, ctid);
  if (!pidAlive(st.pid)) {
    err('Container is not running');
    return 0;
  }
  out('Stopping the Container ...');
  try {
    await ctRequest(paths.ctSocket(env, ctid), { op: 'exit' }, 10_000);
  } catch {
    process.kill(st.pid!, 'SIGKILL');
  }
  await waitExit(st.pid!);
  writeCtState(env, ctid, {});
  out('Container was stopped');
  if (!skipUmount && conf) {
    umountAll(env, conf);
    out('Container is unmounted');
  }
  return 0;
}

/** Wait until a process is gone (it is not our child, so poll its existence). */
async function waitExit(pid: number): Promise<void> {
  for (let n = 0; pidAlive(pid) && n < 2000; n++) await new Promise((r) => setTimeout(r, 5));
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
  if (mountedDisks(env, conf).length === 0) throw new ToolExit(40, 'Container is not mounted');
  umountAll(env, conf);
  out('Container is unmounted');
  return 0;
}

async function suspend(env: EmuEnv, conf: CtConf, dumpDir: string | undefined): Promise<number> {
  const st = readCtState(env, conf.ctid);
  if (!pidAlive(st.pid)) throw new ToolExit(31, 'Container is not running');
  const dir = dumpDir ?? `${conf.vePrivate}/dump/Dump`;
  out('Setting up checkpoint...');
  const r = spawnSync('criu', ['dump', '-t', String(st.pid), '-D', dir, '--root', conf.veRoot], {
    encoding: 'utf8',
    env: process.env,
  });
  if (r.status !== 0) throw new ToolExit(16, `Checkpointing failed\n${r.stderr ?? ''}`.trim());
  await waitExit(st.pid!);
  writeCtState(env, conf.ctid, {});
  umountAll(env, conf);
  out('Checkpointing completed successfully');
  return 0;
}

function restore(env: EmuEnv, conf: CtConf, dumpDir: string | undefined): number {
  if (isRunning(env, conf.ctid)) throw new ToolExit(32, 'Container is already running');
  const dir = dumpDir ?? `${conf.vePrivate}/dump/Dump`;
  if (!existsSync(dir)) throw new ToolExit(17, 'Container is not suspended');
  out('Restoring the Container ...');
  const extra = existsSync(`${dir}/restore-extra-args`)
    ? readFileSync(`${dir}/restore-extra-args`, 'utf8')
    : '';
  const vars = Object.fromEntries(
    [...extra.matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')]),
  );
  const workDir = vars['VE_WORK_DIR'] ?? dir;
  umountAll(env, conf);
  mountAll(env, conf);
  const args = [
    'restore',
    `-v${vars['VE_CRIU_LOGLEVEL'] ?? '4'}`,
    '--file-locks',
    '--tcp-established',
    '--evasive-devices',
    '--manage-cgroups',
    '--link-remap',
    '--root',
    conf.veRoot,
    '--restore-detached',
    '-D',
    dir,
    '-W',
    workDir,
    '-o',
    vars['VE_RESTORE_LOG_PATH'] ?? 'restore.log',
    '--pidfile',
    paths.initPid(env, conf.ctid),
  ];
  const r = spawnSync('criu', args, { encoding: 'utf8', env: { ...process.env, VEID: conf.ctid } });
  if (r.status !== 0) {
    umountAll(env, conf);
    throw new ToolExit(17, `${(r.stderr ?? '').trim()}\nFailed to restore the Container`.trim());
  }
  const pid = Number(readFileSync(paths.initPid(env, conf.ctid), 'utf8').trim());
  writeCtState(env, conf.ctid, { pid });
  out('Container was restored successfully');
  return 0;
}

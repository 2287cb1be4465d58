import {
  closeSync,
  openSync,
  existsSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
  lstatSync,
} from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ToolExit, emuEnv, paths, type EmuEnv } from '../lib/emu-env.ts';
import { GetoptError, out, err, parseOpts, sendErrorsTo, type ParsedOpts } from '../lib/tool.ts';
import { criuCommands, criuOptions, criuUsage } from './options.ts';
import { ctRequest, seizeCt, type CtCoreImage, type DumpReply } from '../container/protocol.ts';
import type { Socket } from 'node:net';

/** The final dump's seize of the CT's tasks: open until this process ends. */
let held: Socket | undefined;
import { launchContainer } from '../container/launch.ts';
import { imageChain } from '../container/images.ts';
import { readCtConf } from '../vzctl/config.ts';
import { ctRuns, diskBases, type CtState } from '../vzctl/ct-state.ts';
import { ctConfig } from '../vzctl/cli.ts';
import { writeDumpStats, writeRestoreStats } from './stats.ts';
import { checkFreezeCgroup, checkVzDump, vzMode } from './vz.ts';
import { childProcess } from '../lib/lazy.ts';

/** The names `check --feature` knows (criu/cr-check.c feature_list at 2cf8f13). */
const checkFeatures = [
  'mnt_id',
  'mem_dirty_track',
  'aio_remap',
  'timerfd',
  'tun',
  'tun_ns',
  'userns',
  'fdinfo_lock',
  'seccomp_suspend',
  'seccomp_filters',
  'loginuid',
  'cgroupns',
  'autofs',
  'tcp_half_closed',
  'compat_cr',
  'uffd',
  'can_map_vdso',
  'sk_ns',
  'sk_unix_file',
  'net_diag_raw',
  'nsid',
  'link_nsid',
  'kcmp_epoll',
  'timens',
  'external_net_ns',
  'clone3_set_tid',
  'newifindex',
  'nftables',
  'has_ipt_legacy',
  'pidfd_store',
  'ns_pid',
  'apparmor_stacking',
  'network_lock_nftables',
  'sockopt_buf_lock',
  'memfd_hugetlb',
  'move_mount_set_group',
  'openat2',
  'get_rseq_conf',
  'ipv6_freebind',
  'pagemap_scan',
  'timer_cr_ids',
  'overlayfs_maps',
  'breakpoints',
  'pagemap_scan_guard_pages',
];

/** `criu <command> [options]`: pre-dump, dump, restore, check, -V (host-tools.md §4, §6). */
export async function criuMain(argv: string[]): Promise<number> {
  const { opts, args } = parseCriuArgv(argv);
  if (opts.has('-V')) {
    out(`Version: ${emuEnv().criuVersion}`);
    return 0;
  }
  const cmd = args[0];
  const one = (...k: string[]) => k.map((x) => opts.get(x)?.at(-1)).find((v) => v !== undefined);
  switch (cmd) {
    case 'check': {
      const env = emuEnv();
      const feature = one('--feature');
      if (feature === undefined) {
        out('Looks good.');
        return 0;
      }
      if (feature === 'mem_dirty_track' && !env.memTrack)
        throw new ToolExit(
          1,
          'Warn  (criu/cr-check.c:826): Dirty tracking is OFF. Memory snapshot will not work.',
        );
      // cr_check with one feature (1659–1663): pr_msg, on stdout. The emulated host has every other feature.
      out(`${feature} is supported`);
      return 0;
    }
    case 'pre-dump':
    case 'dump': {
      const dir = openImageDir(one);
      openLog(opts, one);
      return dump(cmd, opts, one, dir);
    }
    case 'restore': {
      const dir = openImageDir(one);
      openLog(opts, one);
      return restore(one, dir);
    }
    default:
      throw new ToolExit(1, `${cmd}: not emulated (haul streams image dirs; see host-emulators/README.md)`);
  }
}

/**
 * The images folder (-D, else the current one: crtools.c 216–217 at 2cf8f13), opened before the log (257–261, 276):
 * its errors, and the parent link's (open_image_dir, criu/image.c 724–754), go to stderr, never to the -o file.
 */
function openImageDir(one: (...k: string[]) => string | undefined): string {
  const dir = one('-D', '--images-dir') ?? '.';
  if (!existsSync(dir))
    throw new ToolExit(
      1,
      `Error (criu/image.c:726): Can't open dir ${dir}: No such file or directory\nError (criu/crtools.c:259): Couldn't open image dir ${dir}`,
    );
  const prev = one('--prev-images-dir');
  if (prev !== undefined) linkParent(dir, prev);
  return dir;
}

/** The log level (-v, default LOG_WARN: 2); pr_info (3) lines are written from -v3 on. */
let logLevel = 2;
/** A pr_info line: to the log (stderr without -o) when the level lets it through. */
const info = (line: string): void => {
  if (logLevel >= 3) err(line);
};

/**
 * `-o <file>`: criu changes to the work dir (-W, else the images dir) and opens its log there, emptied (crtools.c
 * 271–277, log.c log_init 210–237: O_TRUNC); from then on everything but pr_msg goes to that file, not to stderr
 * (log.c vprint_on_level 360–390), errors included, each line after a "(seconds.micros) " stamp from -v3 on
 * (LOG_TIMESTAMP, log.c 32, print_ts). Without -o, stderr.
 */
function openLog(opts: Map<string, string[]>, one: (...k: string[]) => string | undefined): void {
  const level = Number(opts.get('-v')?.at(-1) || 2);
  logLevel = level;
  const name = one('-o', '--log-file');
  if (name === undefined || name === '-') return;
  const workDir = one('-W', '--work-dir') ?? one('-D', '--images-dir') ?? '.';
  let fd: number;
  try {
    fd = openSync(resolve(workDir, name), 'w', 0o600);
  } catch (e) {
    throw new ToolExit(1, `Error (criu/log.c:226): Can't create log file ${name}: ${(e as Error).message}`);
  }
  const start = process.hrtime.bigint();
  const stamp = () => {
    const us = (process.hrtime.bigint() - start) / 1000n;
    return `(${String(us / 1_000_000n).padStart(2, '0')}.${String(us % 1_000_000n).padStart(6, '0')}) `;
  };
  sendErrorsTo(fd, level >= 3 ? stamp : () => '');
}

/**
 * criu's own refusals, before any command runs (criu/config.c parse_options, criu/crtools.c main): an option not in
 * the table, a missing argument, no or an unknown command, a second word, a value it refuses. The usage text goes to
 * stdout (pr_msg) and the status is 1. `-h` or `--help` anywhere is looked for before anything is parsed (config.c
 * pre_parse 373–391) and prints the usage with 0; getopt then reads the options in order and acts on each as it meets
 * it (parse_options): a value it refuses is refused there (valueRefusal); -V prints the version and exits 0, and -h
 * in a cluster prints the usage (1048–1055); what comes after any of them is not read.
 */
function parseCriuArgv(argv: string[]): ParsedOpts {
  const refuse = (why: string) => new ToolExit(1, why, [criuUsage]);
  if (argv.some((a) => a === '-h' || a === '--help')) throw new ToolExit(0, '', [criuUsage]);
  let parsed: ParsedOpts;
  try {
    parsed = parseOpts(criuOptions, argv, (key, value, given, hasValue) => {
      const refusal = valueRefusal(key, value, given, hasValue);
      if (refusal) throw refusal;
      return key === '-V' || key === '-h' ? 'end' : undefined;
    });
  } catch (e) {
    if (e instanceof GetoptError) throw refuse(`criu: ${e.message}`);
    throw e;
  }
  const { opts, args, endedAt } = parsed;
  if (endedAt === '-V') return parsed;
  if (endedAt === '-h') throw new ToolExit(0, '', [criuUsage]);
  const cmd = args[0];
  if (cmd === undefined) throw refuse('Error (criu/crtools.c): command is required');
  if (!criuCommands.includes(cmd)) throw refuse(`Error (criu/crtools.c): unknown command: ${cmd}`);
  if (args.length > 1 && !opts.has('--exec-cmd') && cmd !== 'cpuinfo')
    throw refuse(
      `Error (criu/crtools.c): excessive parameter${args.length > 2 ? 's' : ''} for command ${cmd}`,
    );
  return parsed;
}

/**
 * The option values parse_options refuses as it meets them (criu/config.c 766–1058), those the text alone decides:
 * - bad_arg (1068–1073: "invalid argument for", the option named as given, `-t` or `--tree` in full), status 1: a -t
 *   whose atoi is not positive; a --port that is 0 as the unsigned short it is stored in (cr_options.h); a
 *   --veth-pair without `=`; an -M neither `auto` nor with `:`; a -J without `:` (parse_join_ns 552–577; what
 *   join_ns_add then checks of the namespace and its file is not emulated);
 * - its own message, status 1: --ms (deprecated), an --empty-ns other than `net`, a --status-fd that is no number, a
 *   --pre-dump-mode other than read or splice, a --network-lock it does not know, a --feature not in feature_list
 *   (check_add_feature, cr-check.c 1891–1903, for any command, where getopt meets it);
 * - its own message, then the usage, status 1 (parse_options returns 2; crtools.c 159–160): an unknown
 *   --manage-cgroups mode, --file-validation method or --cpu-cap token. An optional value left out is none of these
 *   (optarg NULL); `--manage-cgroups=` is an empty one, and refused.
 */
function valueRefusal(key: string, value: string, given: string, hasValue: boolean): ToolExit | undefined {
  const at = (line: number, why: string, usage: string[] = []) =>
    new ToolExit(1, `Error (criu/config.c:${line}): ${why}`, usage);
  const withUsage = (line: number, why: string) => at(line, why, [criuUsage]);
  const badArg = () => at(given.startsWith('--') ? 1072 : 1070, `invalid argument for ${given}: ${value}`);
  const unless = (ok: boolean, refusal: () => ToolExit) => (ok ? undefined : refusal());
  switch (key) {
    case '-t':
      return unless(atoi(value) > 0, badArg);
    case '--port':
      return unless((atoi(value) & 0xffff) !== 0, badArg);
    case '--veth-pair':
      return unless(value.includes('='), badArg);
    case '-M':
      return unless(value === 'auto' || value.includes(':'), badArg);
    case '-J':
      return unless(value.includes(':'), badArg);
    case '--ms':
      return at(872, '--ms is deprecated; see "Check options" of criu --help');
    case '--empty-ns':
      return unless(value === 'net', () => at(974, `Unsupported empty namespace: ${value}`));
    case '--status-fd':
      return unless(/^\s*[+-]?\d/.test(value), () => at(994, 'Unable to parse a value of --status-fd'));
    case '--pre-dump-mode':
      return unless(['read', 'splice'].includes(value), () =>
        at(1024, 'Unable to parse value of --pre-dump-mode'),
      );
    case '--network-lock':
      return unless(['iptables', 'nftables', 'skip', 'none'].includes(value), () =>
        at(1044, `Invalid value for --network-lock: ${value}`),
      );
    case '--feature':
      return unless(
        checkFeatures.includes(value),
        () => new ToolExit(1, `Error (criu/cr-check.c:1901): Unknown feature ${value}`),
      );
    case '--manage-cgroups':
      return unless(!hasValue || ['none', 'props', 'soft', 'full', 'strict', 'ignore'].includes(value), () =>
        withUsage(535, `Unknown cgroups mode \`${value}' selected`),
      );
    case '--file-validation':
      return unless(['filesize', 'buildid'].includes(value), () =>
        withUsage(592, `Unknown file validation method \`${value}' selected`),
      );
    case '--cpu-cap': {
      const rest = hasValue ? cpuCapRest(value) : '';
      return unless(rest === '', () => withUsage(506, `Unknown FPU mode \`${rest}' selected`));
    }
  }
  return undefined;
}

/** parse_cpu_cap's walk (config.c 448–508): what is left at the first token it does not know ('' when none). */
function cpuCapRest(value: string): string {
  let rest = value;
  while (rest !== '') {
    const token = ['^', ',', 'fpu', 'all', 'none', 'cpu', 'ins'].find((t) => rest.startsWith(t));
    if (!token) return rest;
    rest = rest.slice(token.length);
  }
  return '';
}

/**
 * glibc's atoi on a 64-bit host: (int) strtol(s, NULL, 10). Leading blanks and a sign are read, then digits up to the
 * first other character (none: 0); strtol saturates at the long's range, and the cast keeps the low 32 bits, so
 * "2147483648" is negative.
 */
function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  if (!m) return 0;
  const long = 2n ** 63n;
  const v = BigInt(m[1]!);
  return Number(BigInt.asIntN(32, v >= long ? long - 1n : v < -long ? -long : v));
}

/** Find which CT of this node has this init pid. */
function ctByPid(env: EmuEnv, pid: number): string {
  const dir = join(env.root, 'var', 'lib', 'haul-emu', 'cts');
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    // Another CT's state may be rewritten meanwhile (a vzctl of another CT): its temporary file is no state, and a
    // state replaced between the listing and the read is that other CT's, not this one's.
    if (!f.endsWith('.json')) continue;
    let st: CtState;
    try {
      st = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CtState;
    } catch {
      continue;
    }
    if (st.pid === pid && ctRuns(st)) return f.replace(/\.json$/, '');
  }
  throw new ToolExit(1, `Can't find task ${pid}: no such process`);
}

async function dump(
  cmd: 'pre-dump' | 'dump',
  opts: Map<string, string[]>,
  one: (...k: string[]) => string | undefined,
  dir: string,
): Promise<number> {
  const env = emuEnv();
  const { pid, work, ctid, prev } = dumpTarget(cmd, opts, one, env, dir);
  const socket = paths.ctSocket(env, ctid);
  const started = process.hrtime.bigint();
  // cr_pre_dump_tasks (cr-dump.c 1946–1948), pr_info.
  if (cmd === 'pre-dump') info('Enforcing memory tracking for pre-dump.');
  const track = cmd === 'pre-dump' || opts.has('--track-mem');
  let r: DumpReply;
  try {
    // A final dump seizes the tasks for as long as this criu lives (its hold at post-dump included): a criu that is
    // killed lets them run again (criu/seize.c; the CT's `seize`).
    if (cmd === 'dump') held = await seizeCt(socket);
    r = await ctRequest<DumpReply>(socket, {
      op: 'dump',
      dir,
      pid,
      incremental: prev !== undefined,
      track,
      leaveFrozen: cmd === 'dump',
    });
  } catch (e) {
    throw new ToolExit(1, `Error (criu/cr-dump.c): ${(e as Error).message}`);
  }
  writeFileSync(
    join(dir, 'inventory.img'),
    JSON.stringify({ magic: 'INVENTORY', img_version: 2, root_pid: pid }),
  );
  if (cmd === 'dump') {
    const rc = await finishDump(opts, one, socket, dir, pid, r);
    held?.destroy(); // the tasks were let go as asked (thawed, stopped or ended): the seize ends with it
    // The stats only of a dump that succeeded (cr_dump_finish, cr-dump.c 2123–2133).
    if (rc !== 0) return rc;
  }
  writeStats(cmd, work, r, started);
  info(`${cmd === 'dump' ? 'Dumping' : 'Pre-dumping'} finished successfully`);
  return 0;
}

/** What a dump works on, checked as criu checks it before it seizes the tree. */
function dumpTarget(
  cmd: 'pre-dump' | 'dump',
  opts: Map<string, string[]>,
  one: (...k: string[]) => string | undefined,
  env: EmuEnv,
  dir: string,
): { pid: number; work: string; ctid: string; prev: string | undefined } {
  // check_options, after the log opened (crtools.c 284): no --track-mem without dirty tracking (config.c 1129–1132).
  if (opts.has('--track-mem') && !env.memTrack)
    throw new ToolExit(
      1,
      'Error (criu/config.c:1130): Tracking memory is not available. Consider omitting --track-mem option.',
    );
  const tree = one('-t', '--tree');
  const pid = tree === undefined ? 0 : atoi(tree);
  // opt_pid_missing (crtools.c 582–584).
  if (!pid) throw new ToolExit(1, 'Error (criu/crtools.c:583): pid not specified');
  const prev = one('--prev-images-dir');
  const ctid = ctByPid(env, pid);
  if (vzMode(env)) {
    checkFreezeCgroup(opts, pid);
    const conf = readCtConf(env, ctid);
    if (cmd === 'dump' && conf) checkVzDump(env, conf, opts);
  }
  // cr_dump_tasks reads the cgroup properties file before it seizes the tree (criu/cr-dump.c 2185 → cgp_init →
  // cgp_parse_file, criu/cgroup-props.c 370–378): one that cannot be opened fails the dump.
  const props = one('--cgroup-props-file');
  if (cmd === 'dump' && props !== undefined) {
    try {
      closeSync(openSync(props, 'r'));
    } catch (e) {
      const why =
        (e as NodeJS.ErrnoException).code === 'EACCES' ? 'Permission denied' : 'No such file or directory';
      throw new ToolExit(1, `Error (criu/cgroup-props.c:378): Can't open file ${props}: ${why}`);
    }
  }
  return { pid, work: one('-W', '--work-dir') ?? dir, ctid, prev };
}

/**
 * --prev-images-dir as open_image_dir takes it (criu/image.c 739–754 at 2cf8f13): the folder must be readable from
 * the images folder, then `parent` is linked to it, a `parent` already there kept as it is (symlinkat's EEXIST is no
 * error), and an absolute path only warned about.
 */
function linkParent(dir: string, prev: string): void {
  if (!existsSync(resolve(dir, prev)))
    throw new ToolExit(
      1,
      'Error (criu/image.c:742): Invalid parent image directory provided: No such file or directory',
    );
  const link = join(dir, 'parent');
  if (!existsSync(link) && !isLink(link)) symlinkSync(prev, link);
  if (isAbsolute(prev))
    err('Warn  (criu/image.c:753): Absolute paths for parent links may not work on restore!');
}

/**
 * The rest of a final dump, the CT frozen: its images, the action script at post-dump (non-zero: the tasks resume
 * and criu ends with that status), then the tasks' final state (-R running, -s stopped, else killed). Returns the
 * status criu ends with.
 */
async function finishDump(
  opts: Map<string, string[]>,
  one: (...k: string[]) => string | undefined,
  socket: string,
  dir: string,
  pid: number,
  r: DumpReply,
): Promise<number> {
  const core = await ctRequest<CtCoreImage>(socket, { op: 'state' });
  writeFileSync(join(dir, `core-${pid}.img`), JSON.stringify(core));
  writeFileSync(join(dir, 'pstree.img'), JSON.stringify({ pid, ppid: 0, pgid: pid, sid: pid }));
  writeFileSync(join(dir, `mm-${pid}.img`), JSON.stringify({ pages: r.pagesScanned }));
  const script = one('--action-script');
  if (script) {
    const rc = await runActionScript(script, pid, resolve(dir));
    if (rc !== 0) {
      await ctRequest(socket, { op: 'thaw' });
      err(`Error (criu/action_scripts.c): One of more action scripts failed (${rc}); tasks resumed`);
      err('Error (criu/cr-dump.c:2128): Dumping FAILED.');
      return rc;
    }
  }
  if (opts.has('-R') || opts.has('--leave-running')) await ctRequest(socket, { op: 'thaw' });
  else if (opts.has('-s') || opts.has('--leave-stopped')) await ctRequest(socket, { op: 'freeze' });
  else await ctRequest(socket, { op: 'exit' });
  return 0;
}

const isLink = (p: string) => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};

/**
 * A dump's frozen_time runs until after post-dump (cr_dump_finish, criu/cr-dump.c 2111–2112), so it covers the action
 * script's wait. A pre-dump's stops when the tasks are thawed, before the pages are written (cr_pre_dump_finish,
 * criu/cr-dump.c 1855–1857, then page_xfer_dump_pages at 1885): the CT's frozen span.
 */
function writeStats(cmd: 'pre-dump' | 'dump', work: string, r: DumpReply, started: bigint): void {
  const run = Number((process.hrtime.bigint() - started) / 1000n);
  writeDumpStats(join(work, 'stats-dump'), {
    freezingTime: 50,
    frozenTime: cmd === 'dump' ? Math.max(r.frozenUs, run) : r.frozenUs,
    memdumpTime: r.memdumpUs,
    memwriteTime: r.memwriteUs,
    pagesScanned: r.pagesScanned,
    pagesSkippedParent: r.pagesSkipped,
    pagesWritten: r.pagesWritten,
  });
}

/**
 * criu runs each action script with the action, the root task's pid and the images folder in its environment
 * (criu/action-scripts.c run_scripts: CRTOOLS_SCRIPT_ACTION, CRTOOLS_INIT_PID, CRTOOLS_IMAGE_DIR, the latter
 * /proc/<pid>/fd/<images fd>, which names the same folder); VZ's vz-cpt-action needs the folder at post-dump.
 */
function runActionScript(script: string, pid: number, imageDir: string): Promise<number> {
  return new Promise((resolveRc) => {
    const child = childProcess().spawn(script, [], {
      stdio: 'inherit',
      env: {
        ...process.env,
        CRTOOLS_SCRIPT_ACTION: 'post-dump',
        CRTOOLS_INIT_PID: String(pid),
        CRTOOLS_IMAGE_DIR: imageDir,
      },
    });
    child.once('error', () => resolveRc(1));
    child.once('exit', (code, signal) => resolveRc(code ?? (signal ? 1 : 0)));
  });
}

async function restore(one: (...k: string[]) => string | undefined, dir: string): Promise<number> {
  const env = emuEnv();
  const work = one('-W', '--work-dir') ?? dir;
  const started = process.hrtime.bigint();
  let chain: string[];
  try {
    chain = imageChain(dir);
  } catch (e) {
    throw new ToolExit(1, `Error (criu/image.c): ${(e as Error).message}`);
  }
  const coreFile = readdirSync(dir).find((f) => /^core-\d+\.img$/.test(f));
  if (!coreFile) throw new ToolExit(1, `Error (criu/cr-restore.c): no core image in ${dir}: not a full dump`);
  const core = JSON.parse(readFileSync(join(dir, coreFile), 'utf8')) as CtCoreImage;
  const conf = readCtConf(env, core.config.ctid);
  if (!conf) throw new ToolExit(1, `Error: CT ${core.config.ctid} has no config on ${env.node}`);
  let pid: number;
  try {
    pid = await launchContainer(env, { ...ctConfig(conf), diskBases: diskBases(conf) }, dir);
  } catch (e) {
    throw new ToolExit(1, `Error (criu/cr-restore.c): ${(e as Error).message}`);
  }
  const pidfile = one('--pidfile');
  if (pidfile) writeFileSync(pidfile, `${pid}\n`);
  const us = Number((process.hrtime.bigint() - started) / 1000n);
  writeRestoreStats(join(work, 'stats-restore'), {
    pagesCompared: 0,
    forkingTime: 100,
    restoreTime: us,
    pagesRestored: (core.config.memoryMb * 1024 * 1024) / 4096,
  });
  info(`Restore finished successfully. Tasks resumed. (${chain.length} image dirs in the chain)`);
  return 0;
}

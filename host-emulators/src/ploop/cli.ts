import { ToolExit, emuEnv } from '../lib/emu-env.ts';
import { GetoptError, err, out, parseOpts } from '../lib/tool.ts';
import {
  commandUsage,
  imageFormats,
  isPloopCommand,
  isWholeUl,
  paramExit,
  parseSize,
  parseUuid,
  ploopOptions,
  type PloopCommand,
} from './options.ts';
import {
  EX,
  info,
  init,
  list,
  mount,
  normalizeGuid,
  resolveDd,
  snapshot,
  snapshotDelete,
  snapshotList,
  snapshotMerge,
  snapshotSwitch,
  umount,
  usage,
} from './ops.ts';

/*
 * The command line of ploop 7 at OpenVZ/ploop v7.0.280 (e49c878; options.ts says why that version): tools/ploop.c
 * main and the plooptool_* functions, tools/ploop-snapshot.c plooptool_snapshot_list. Line numbers are at v7.0.280.
 */

const uuidChecked = new Set<PloopCommand>([
  'mount',
  'snapshot',
  'snapshot-switch',
  'snapshot-delete',
  'snapshot-merge',
  'snapshot-list',
]);
/** Commands that take exactly one descriptor, checked before anything else (snapshot-merge checks its own, later). */
const oneDescriptor = new Set<PloopCommand>(['snapshot', 'snapshot-delete', 'snapshot-switch', 'info']);

/** `ploop [-v…] <command> [options] ARGS`: the commands of host-tools.md §2 and §6. */
export function ploopMain(argv: string[]): number {
  let i = 0;
  while (argv[i]?.startsWith('-')) {
    // Any -v… is a verbosity (-v, -vv…, -vN); every other leading option is refused (tools/ploop.c main 1551–1574).
    if (!argv[i]!.startsWith('-v')) throw new ToolExit(EX.PARAM, `Bad option ${argv[i]}\n${usage()}`);
    i++;
  }
  const cmd = argv[i];
  // An unknown command: real ploop tries to exec ploop-<cmd>, then prints the summary usage (tools/ploop.c main
  // 1648–1661).
  if (!isPloopCommand(cmd)) throw new ToolExit(EX.PARAM, usage());
  const { opts, args } = parseCommandLine(cmd, argv.slice(i + 1));
  // These want exactly one descriptor ("argc != 1": snapshot 678–681, switch 790, delete 834, info 1126).
  if (oneDescriptor.has(cmd) && args.length !== 1) throw new ToolExit(EX.PARAM, commandUsage(cmd));
  const one = (k: string) => opts.get(k)?.at(-1);
  const flag = (k: string) => opts.has(k);
  /** The one descriptor: a name not ending in .xml is refused with this command's usage (ops.ts resolveDd). */
  const ddArg = () => {
    const a = args[0];
    if (a === undefined) throw new ToolExit(paramExit(cmd), commandUsage(cmd));
    return resolveDd(a, commandUsage(cmd));
  };
  const print = (lines: string[]) => {
    for (const l of lines) out(l);
    return 0;
  };
  switch (cmd) {
    case 'init': {
      // One operand (199–202); no -s, or -s 0, is the usage (216–219). The options' values were checked as read.
      if (args.length !== 1) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(init(one('-s') ?? '0', args[0]!, one('-f') ?? 'expanded'));
    }
    case 'mount': {
      const env = emuEnv();
      const o: Parameters<typeof mount>[2] = { readonly: flag('-r') };
      const g = one('-u');
      if (g !== undefined) o.guid = normalizeGuid(g);
      const m = one('-m');
      if (m) o.mountpoint = m;
      return print(mount(env, ddArg(), o).lines);
    }
    case 'umount': {
      // -d first, then -m, then the descriptor; none of them and not one operand: the usage (532–564).
      const env = emuEnv();
      const d = one('-d');
      const m = one('-m');
      if (args.length !== 1 && d === undefined && m === undefined)
        throw new ToolExit(EX.PARAM, commandUsage(cmd));
      // A partition's name is taken for its device's: ploopNp1 → ploopN (537–545).
      if (d !== undefined) return print(umount(env, { dev: d.replace(/(?<=\d)p1$/, '') }));
      if (m !== undefined) return print(umount(env, { mountpoint: m }));
      return print(umount(env, { dd: ddArg() }));
    }
    case 'snapshot':
      return print(snapshot(emuEnv(), ddArg(), one('-u'), flag('-o')));
    case 'snapshot-delete': {
      const g = one('-u');
      if (!g) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(snapshotDelete(emuEnv(), ddArg(), g));
    }
    case 'snapshot-merge': {
      // -u with -A is refused before the operands are looked at (884–888), then one descriptor (890–902).
      const all = flag('-A');
      if (opts.has('-u') && all)
        throw new ToolExit(EX.PARAM, `Options -u and -A can't be used together\n${commandUsage(cmd)}`);
      if (args.length !== 1) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(snapshotMerge(emuEnv(), ddArg(), one('-u'), all));
    }
    case 'snapshot-switch': {
      const g = one('-u');
      if (!g) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(snapshotSwitch(emuEnv(), ddArg(), g));
    }
    case 'snapshot-list': {
      // tools/ploop-snapshot.c: no operand is the usage and 1 (251–254); the first operand is read, any name.
      const a = args[0];
      if (!a) throw new ToolExit(1, commandUsage(cmd));
      // --snapshot X sets the same mode as -s (its X unused: 214, 237–239).
      const o: Parameters<typeof snapshotList>[1] = {
        noHeader: flag('-H'),
        hideTop: flag('-s') || flag('--snapshot'),
      };
      const f = one('-o');
      if (f !== undefined) o.fields = f;
      const u = one('-u');
      if (u !== undefined) o.uuid = parseUuid(u)!;
      return print(snapshotList(a, o));
    }
    case 'info':
      return print(info(emuEnv(), ddArg(), { size: flag('-s'), device: flag('-d') }));
    case 'list':
      // No operand: "argc != 0" prints the usage (tools/ploop.c plooptool_list 1216–1219).
      if (args.length !== 0) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(list(emuEnv(), { all: flag('-a') }));
  }
}

/**
 * The values a command's getopt loop refuses as it reads them, in order: each ends the command there, before any
 * later option is read (a later unknown option included).
 */
function checkValue(cmd: PloopCommand, key: string, value: string): 'end' | undefined {
  // The usage after the message, as the loop prints it (init 128–153 and 170–175, mount 269–274 and 292–298).
  const refuse = (message?: string): never => {
    throw new ToolExit(
      EX.PARAM,
      message === undefined ? commandUsage(cmd) : `${message}\n${commandUsage(cmd)}`,
    );
  };
  // parse_uuid (tools/common.c 101–122): no GUID, an empty one included, is SYSEXIT_PARAM and no usage, snapshot-list
  // too (mount 283–287, snapshot 658–662, switch 772–776, delete 820–824, merge 864–868; ploop-snapshot.c 232–236).
  if (key === '-u' && uuidChecked.has(cmd)) normalizeGuid(value);
  // snapshot-list -h: the usage, exit 0, nothing read after it (tools/ploop-snapshot.c 240–242).
  if (cmd === 'snapshot-list' && key === '-h') throw new ToolExit(0, commandUsage(cmd));
  if (cmd === 'init' || cmd === 'mount') {
    if (key === '-f' && !(imageFormats as readonly string[]).includes(value))
      refuse(`Bad -f argument: ${value}`); // parse_format_opt (tools/common.c 87–99)
    if (key === '-b' && !isWholeUl(value)) refuse();
  }
  if (cmd === 'init') {
    if (key === '-s') {
      const size = parseSize(value);
      if ('error' in size) refuse(size.error);
    }
    if (key === '-B' && !isWholeUl(value)) refuse();
    // -t: none, ext4 or ext3 (155–166: no usage); ploop 9 also takes xfs.
    if (key === '-t' && !['none', 'ext4', 'ext3'].includes(value))
      throw new ToolExit(EX.PARAM, `Incorrect file system type specified: ${value}`);
    if (key === '-v' && value !== '1' && value !== '2') refuse(`Invalid -v argument: ${value}`); // 95–104, 170–175
  }
  return undefined;
}

/** The command's getopt: a refused option prints glibc's message and the command's usage (tools/ploop.c). */
function parseCommandLine(cmd: PloopCommand, argv: string[]) {
  try {
    return parseOpts(ploopOptions[cmd], argv, (key, value) => checkValue(cmd, key, value));
  } catch (e) {
    if (!(e instanceof GetoptError)) throw e;
    err(`ploop: ${e.message}`);
    throw new ToolExit(paramExit(cmd), commandUsage(cmd));
  }
}

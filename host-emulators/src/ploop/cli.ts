import { ToolExit, emuEnv } from '../lib/emu-env.ts';
import { GetoptError, err, out, parseOpts } from '../lib/tool.ts';
import { commandUsage, isPloopCommand, paramExit, ploopOptions, type PloopCommand } from './options.ts';
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

const uuidChecked = new Set<PloopCommand>([
  'mount',
  'snapshot',
  'snapshot-switch',
  'snapshot-delete',
  'snapshot-merge',
]);
const oneDescriptor = new Set<PloopCommand>([
  'snapshot',
  'snapshot-delete',
  'snapshot-switch',
  'snapshot-merge',
  'info',
]);

/** `ploop [-v…] <command> [options] ARGS`: the commands of host-tools.md §2 and §6. */
export function ploopMain(argv: string[]): number {
  let i = 0;
  while (argv[i]?.startsWith('-')) {
    // Any -v… is a verbosity (-v, -vv…, -vN); every other leading option is refused (tools/ploop.c main).
    if (!argv[i]!.startsWith('-v')) throw new ToolExit(EX.PARAM, `Bad option ${argv[i]}\n${usage()}`);
    i++;
  }
  const cmd = argv[i];
  // An unknown command: real ploop tries to exec ploop-<cmd>, then prints the summary usage (tools/ploop.c main).
  if (!isPloopCommand(cmd)) throw new ToolExit(EX.PARAM, usage());
  const { opts, args } = parseCommandLine(cmd, argv.slice(i + 1));
  // Each -u is read as getopt meets it: no GUID (an empty one included) ends the command with SYSEXIT_PARAM
  // (tools/ploop.c: mount 308–311, snapshot 729–732, switch 835–838, delete 883–886, merge 927–930; parse_uuid).
  if (uuidChecked.has(cmd)) for (const u of opts.get('-u') ?? []) normalizeGuid(u);
  // These want exactly one descriptor ("argc != 1" in tools/ploop.c; snapshot-merge 953–965, info 1166–1169).
  if (oneDescriptor.has(cmd) && args.length !== 1) throw new ToolExit(EX.PARAM, commandUsage(cmd));
  const one = (k: string) => opts.get(k)?.at(-1);
  const flag = (k: string) => opts.has(k);
  const ddArg = () => {
    const a = args[0];
    if (a === undefined) throw new ToolExit(paramExit(cmd), commandUsage(cmd));
    return resolveDd(a);
  };
  const print = (lines: string[]) => {
    for (const l of lines) out(l);
    return 0;
  };
  switch (cmd) {
    case 'init': {
      const size = one('-s');
      const delta = args[0];
      if (!size || !delta) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(init(size, delta, one('-f') ?? 'expanded'));
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
      const env = emuEnv();
      const m = one('-m');
      const d = one('-d');
      if (m) return print(umount(env, { mountpoint: m }));
      if (d) return print(umount(env, { dev: d }));
      return print(umount(env, { dd: ddArg() }));
    }
    case 'snapshot':
      return print(snapshot(emuEnv(), ddArg(), one('-u'), flag('-o')));
    case 'snapshot-delete': {
      const g = one('-u');
      if (!g) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(snapshotDelete(emuEnv(), ddArg(), g));
    }
    case 'snapshot-merge':
      return print(snapshotMerge(emuEnv(), ddArg(), one('-u'), flag('-A')));
    case 'snapshot-switch': {
      const g = one('-u');
      if (!g) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(snapshotSwitch(emuEnv(), ddArg(), g));
    }
    case 'snapshot-list': {
      const a = args[0];
      if (!a) throw new ToolExit(1, commandUsage(cmd));
      const o: Parameters<typeof snapshotList>[1] = { noHeader: flag('-H'), hideTop: flag('-s') };
      const f = one('-o');
      if (f) o.fields = f;
      const u = one('-u');
      if (u !== undefined) o.uuid = u;
      return print(snapshotList(resolveDd(a), o));
    }
    case 'info':
      return print(info(emuEnv(), ddArg(), { size: flag('-s'), device: flag('-d') }));
    case 'list':
      // No operand: "argc != 0" prints the usage (tools/ploop.c plooptool_list).
      if (args.length !== 0) throw new ToolExit(EX.PARAM, commandUsage(cmd));
      return print(list(emuEnv(), { full: flag('-f') }));
  }
}

/** The command's getopt: a refused option prints glibc's message and the command's usage (tools/ploop.c). */
function parseCommandLine(cmd: PloopCommand, argv: string[]) {
  try {
    return parseOpts(ploopOptions[cmd], argv);
  } catch (e) {
    if (!(e instanceof GetoptError)) throw e;
    err(`ploop: ${e.message}`);
    throw new ToolExit(paramExit(cmd), commandUsage(cmd));
  }
}

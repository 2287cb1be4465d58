import { ToolExit, emuEnv } from '../lib/emu-env.ts';
import { getopt, out } from '../lib/tool.ts';
import {
  EX,
  info,
  init,
  mount,
  resolveDd,
  snapshot,
  snapshotDelete,
  snapshotList,
  snapshotMerge,
  snapshotSwitch,
  umount,
  usage,
} from './ops.ts';

/** Options that take a value, per command (the same letter is a flag in one command and takes a value in another). */
const withValue: Record<string, string[]> = {
  init: ['-s', '-f', '-t', '-b', '-v', '-B', '-L', '-k'],
  mount: ['-m', '-u', '-t', '-o', '-c'],
  umount: ['-m', '-d', '-c'],
  snapshot: ['-u', '-b', '-d'],
  'snapshot-delete': ['-u'],
  'snapshot-merge': ['-u', '-n'],
  'snapshot-switch': ['-u'],
  'snapshot-list': ['-o', '-u'],
  info: [],
};

/** `ploop [-v…] <command> [options] ARGS`: the commands of host-tools.md §2 and §6. */
export function ploopMain(argv: string[]): number {
  let i = 0;
  while (argv[i]?.startsWith('-')) {
    if (!/^-v+$|^-v\d$/.test(argv[i]!)) throw new ToolExit(EX.PARAM, `Bad option ${argv[i]}\n${usage()}`);
    i++;
  }
  const cmd = argv[i];
  const { opts, args } = getopt(argv.slice(i + 1), withValue[cmd ?? ''] ?? []);
  const one = (k: string) => opts.get(k)?.at(-1);
  const flag = (k: string) => opts.has(k);
  const ddArg = () => {
    const a = args[0];
    if (a === undefined) throw new ToolExit(EX.PARAM, usage());
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
      if (!size || !delta) throw new ToolExit(EX.PARAM, usage());
      return print(init(size, delta, one('-f') ?? 'expanded'));
    }
    case 'mount': {
      const env = emuEnv();
      const o: Parameters<typeof mount>[2] = { readonly: flag('-r') };
      const g = one('-u');
      if (g) o.guid = g.length === 36 ? `{${g}}` : g;
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
      if (!g) throw new ToolExit(EX.PARAM, usage());
      return print(snapshotDelete(emuEnv(), ddArg(), g));
    }
    case 'snapshot-merge':
      return print(snapshotMerge(emuEnv(), ddArg(), one('-u'), flag('-A')));
    case 'snapshot-switch': {
      const g = one('-u');
      if (!g) throw new ToolExit(EX.PARAM, usage());
      return print(snapshotSwitch(emuEnv(), ddArg(), g));
    }
    case 'snapshot-list': {
      const a = args[0];
      if (!a) throw new ToolExit(1, usage());
      const o: Parameters<typeof snapshotList>[1] = { noHeader: flag('-H'), hideTop: flag('-s') };
      const f = one('-o');
      if (f) o.fields = f;
      const u = one('-u');
      if (u) o.uuid = u;
      return print(snapshotList(resolveDd(a), o));
    }
    case 'info':
      return print(info(emuEnv(), ddArg(), { size: flag('-s'), device: flag('-d') }));
    default:
      throw new ToolExit(EX.PARAM, usage());
  }
}

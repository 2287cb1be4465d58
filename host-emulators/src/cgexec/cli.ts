import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ToolExit, emuEnv, paths, type EmuEnv } from '../lib/emu-env.ts';
import { err, out } from '../lib/tool.ts';
import { writeFully } from '../lib/write-fully.ts';

/*
 * `cgexec -g <controllers>:<path> [--sticky] <command> [args]` (libcgroup): runs the command in those cgroups. VZ
 * uses it to read and write a CT's own sysctls from the host: entering the CT's ve cgroup makes the process see the
 * VE's copy of a virtualized sysctl such as kernel.core_pattern (libvzctl 5ebf313; scripts/vz-cpt-action.in 115–116,
 * vz-rst-action.in 167–169; P.Haul phaul/p_haul_vz.py 240–267). The emulator runs no real command: it answers the
 * forms that read or set the per-VE sysctls VZ's action scripts carry (vz-cpt-action.in 115–124), `cat
 * /proc/sys/<…> [/proc/sys/<…> …]` and `sysctl -w|-n <name>[=<value>]`, and refuses anything else. A sysctl the VE
 * does not have (the host kernel has no fs.fsync-enable) fails as cat and sysctl fail on a missing /proc file: cat
 * reports it, prints the other files and exits 1.
 */

/** The sysctls the emulated kernel virtualizes per VE: /proc/sys path → name. */
export const veSysctls: Record<string, string> = {
  '/proc/sys/kernel/core_pattern': 'kernel.core_pattern',
  '/proc/sys/fs/fsync-enable': 'fs.fsync-enable',
  '/proc/sys/fs/odirect_enable': 'fs.odirect_enable',
  '/proc/sys/kernel/randomize_va_space': 'kernel.randomize_va_space',
};

const usage = 'Usage is cgexec [-h] [-g <controllers>:<path>] [--sticky] command [arguments] ...';

export function cgexecMain(argv: string[]): number {
  const groups: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-g') {
      const v = argv[++i];
      if (v === undefined) throw new ToolExit(1, `cgexec: option requires an argument -- 'g'\n${usage}`);
      groups.push(v);
    } else if (a.startsWith('-g')) groups.push(a.slice(2));
    else if (a === '--sticky') continue;
    else if (a === '-h') {
      out(usage);
      return 0;
    } else if (a.startsWith('-')) throw new ToolExit(1, `cgexec: unrecognized option '${a}'\n${usage}`);
    else break;
  }
  const cmd = argv.slice(i);
  if (cmd.length === 0) throw new ToolExit(1, `cgexec: no command given\n${usage}`);
  const env = emuEnv();
  // `<controllers>:<path>` (libcgroup's parse_cgroup_spec); a group without its colon names no cgroup.
  const ve = groups
    .filter((g) => g.includes(':'))
    .map((g) => ({ ctls: g.slice(0, g.indexOf(':')).split(','), path: g.slice(g.indexOf(':') + 1) }))
    .find((g) => g.ctls.includes('ve'));
  if (!ve)
    throw new ToolExit(
      1,
      `Error (emulator): cgexec ${argv.join(' ')}: only commands in a CT's ve cgroup (-g ve:<ctid>) are emulated`,
    );
  const ctid = ve.path.replace(/^\/+/, '');
  // libcgroup's cgexec (cgexec.c main): cgroup_change_cgroup_path fails for a cgroup that does not exist.
  if (!existsSync(paths.veCg(env, ctid))) throw new ToolExit(1, 'cgroup change of group failed');
  return runInVe(env, ctid, cmd);
}

function runInVe(env: EmuEnv, ctid: string, cmd: string[]): number {
  const file = (name: string) => paths.veSysctl(env, ctid, name);
  const [prog, ...args] = cmd;
  const missing = (name: string) => {
    if (existsSync(file(name))) return;
    const proc = Object.keys(veSysctls).find((k) => veSysctls[k] === name)!;
    throw new ToolExit(255, `sysctl: cannot stat ${proc}: No such file or directory`);
  };
  // cat (coreutils cat.c main): the files one after the other; one it cannot open is reported on stderr, the others
  // are still printed, and cat exits 1 at the end.
  if (prog === 'cat' && args.length > 0 && args.every((a) => Object.hasOwn(veSysctls, a))) {
    let code = 0;
    for (const proc of args) {
      const f = file(veSysctls[proc]!);
      if (existsSync(f)) writeFully(1, readFileSync(f, 'utf8'));
      else {
        err(`cat: ${proc}: No such file or directory`);
        code = 1;
      }
    }
    return code;
  }
  if (
    prog === 'sysctl' &&
    args[0] === '-n' &&
    args.length === 2 &&
    Object.values(veSysctls).includes(args[1]!)
  ) {
    missing(args[1]!);
    writeFully(1, readFileSync(file(args[1]!), 'utf8'));
    return 0;
  }
  if (prog === 'sysctl' && args[0] === '-w' && args.length === 2) {
    const eq = args[1]!.indexOf('=');
    const name = args[1]!.slice(0, eq);
    if (eq > 0 && Object.values(veSysctls).includes(name)) {
      missing(name);
      writeFileSync(file(name), `${args[1]!.slice(eq + 1)}\n`);
      out(`${name} = ${args[1]!.slice(eq + 1)}`);
      return 0;
    }
  }
  throw new ToolExit(
    1,
    `Error (emulator): cgexec: ${cmd.join(' ')}: only \`cat /proc/sys/<…> …\` and \`sysctl -n|-w <name>[=<value>]\` of ${Object.values(veSysctls).join(', ')} are emulated in a VE`,
  );
}

/**
 * What vz-rst-action does at post-restore with one saved sysctl (vz-rst-action.in 167–179): `cgexec -g ve:$VEID echo
 * \`cat vz_<…>.img\` > /proc/sys/<…>`. The unquoted substitution is split into words and echo joins them with one
 * space (the saved text's newline and runs of blanks do not survive). A VE without that sysctl fails the write.
 */
export function setVeSysctl(env: EmuEnv, ctid: string, name: string, saved: string): void {
  const file = paths.veSysctl(env, ctid, name);
  if (!existsSync(file)) throw new Error(`${name}: No such file or directory`);
  const words = saved.split(/[ \t\n]+/).filter((w) => w !== '');
  writeFileSync(file, `${words.join(' ')}\n`);
}

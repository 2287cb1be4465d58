import { spawn } from 'node:child_process';
import { closeSync, openSync, realpathSync } from 'node:fs';
import { ToolExit, emuEnv, paths } from '../lib/emu-env.ts';
import { acquireLock } from '../lib/lock.ts';
import { GetoptError, err, parseOpts } from '../lib/tool.ts';
import { EX_USAGE, flockOptions } from './options.ts';

/**
 * `flock [-x] [-w SECS] [-E CODE] FILE COMMAND [ARGS…]`: run COMMAND holding an exclusive lock on FILE. The lock is
 * the emulators' stand-in for flock(2) (lib/lock.ts), named by FILE's real path, so it is the same lock the emulated
 * ploop takes as `<DiskDescriptor.xml>.lck` (ploop lib/lock.c). Only the exclusive form with a command is emulated;
 * the descriptor form (`flock FD`) needs an open descriptor, which a separate emulator process cannot share.
 */
export async function flockMain(argv: string[]): Promise<number> {
  // getopt's '+': options end at the first word (the file); everything after it is the command's.
  const fileAt = argv.findIndex((a, i) => !a.startsWith('-') && !takesValue(argv[i - 1]));
  const head = fileAt < 0 ? argv : argv.slice(0, fileAt);
  let opts: Map<string, string[]>;
  try {
    opts = parseOpts(flockOptions, head).opts;
  } catch (e) {
    if (e instanceof GetoptError) throw new ToolExit(EX_USAGE, `flock: ${e.message}`);
    throw e;
  }
  const [file, ...command] = fileAt < 0 ? [] : argv.slice(fileAt);
  if (file === undefined) throw new ToolExit(EX_USAGE, 'flock: missing file descriptor, file or directory');
  if (opts.has('-c')) command.unshift('sh', '-c', opts.get('-c')!.at(-1)!);
  if (command.length === 0) throw new ToolExit(EX_USAGE, 'flock: missing command');
  if (opts.has('-s') || opts.has('-u')) throw new ToolExit(EX_USAGE, 'flock: only -x is emulated');
  const conflict = Number(opts.get('-E')?.at(-1) ?? 1);
  const wait = opts.get('-w')?.at(-1);
  const timeoutMs = opts.has('-n') ? 0 : wait === undefined ? 2 ** 31 - 1 : Number(wait) * 1000;
  if (!Number.isFinite(timeoutMs)) throw new ToolExit(EX_USAGE, `flock: invalid timeout: '${wait}'`);
  closeSync(openSync(file, 'a', 0o666)); // O_CREAT, as flock(1) opens it
  const release = acquireLock(paths.locks(emuEnv().clusterDir), realpathSync(file), timeoutMs);
  if (!release) {
    if (opts.has('--verbose')) err('flock: timeout while waiting to get lock');
    return conflict;
  }
  try {
    return await runCommand(command);
  } finally {
    release();
  }
}

const takesValue = (prev: string | undefined): boolean =>
  prev !== undefined &&
  ['-w', '--timeout', '--wait', '-E', '--conflict-exit-code', '-c', '--command'].includes(prev);

/** The command with this process's stdin, stdout and stderr; its exit status (a signal: 128 + n, as a shell). */
function runCommand(command: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15)));
  });
}

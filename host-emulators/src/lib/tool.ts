import { ToolExit } from './emu-env.ts';
import { applyFaults, killCallerAfter } from './faults.ts';

export const out = (line: string): void => void process.stdout.write(`${line}\n`);
export const err = (line: string): void => void process.stderr.write(`${line}\n`);

/** Run a tool's main: fault plan first, then the command; ToolExit becomes stderr text and an exit status. */
export async function runTool(
  tool: string,
  main: (argv: string[]) => Promise<number> | number,
): Promise<void> {
  const argv = process.argv.slice(2);
  let code: number;
  try {
    await applyFaults(tool, argv);
    code = await main(argv);
  } catch (e) {
    if (e instanceof ToolExit) {
      for (const l of e.stdout) out(l);
      if (e.message) err(e.message);
      code = e.exitCode;
    } else {
      err(`${tool}: internal emulator error: ${(e as Error).stack ?? String(e)}`);
      code = 70;
    }
  }
  process.exitCode = code;
  if (killCallerAfter) process.kill(process.ppid, 'SIGKILL');
}

/** Minimal getopt: flags with values listed in `withValue`; the rest are positionals. `--x=y` accepted. */
export function getopt(argv: string[], withValue: string[]): { opts: Map<string, string[]>; args: string[] } {
  const opts = new Map<string, string[]>();
  const args: string[] = [];
  const add = (k: string, v: string) => opts.set(k, [...(opts.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a.length > 1) {
      const eq = a.indexOf('=');
      const key = eq > 0 ? a.slice(0, eq) : a;
      if (withValue.includes(key)) {
        const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new ToolExit(38, `option ${key} requires a value`);
        add(key, v);
      } else add(key, '');
    } else args.push(a);
  }
  return { opts, args };
}

import { writeFully } from './write-fully.ts';
import { ToolExit } from './emu-env.ts';
import { applyFaults, killCallerAfter } from './faults.ts';

export const out = (line: string): void => writeFully(1, `${line}\n`);

/** Where err() writes: stderr, or a tool's own log file from the moment it opens one (criu's -o). */
let errorSink: ((line: string) => void) | undefined;
export const err = (line: string): void => (errorSink ? errorSink(line) : writeFully(2, `${line}\n`));

/** From now on err() (a ToolExit's message included) writes to this file descriptor, each line after `prefix()`. */
export function sendErrorsTo(fd: number, prefix: () => string = () => ''): void {
  errorSink = (text) => {
    writeFully(
      fd,
      text
        .split('\n')
        .map((line) => `${prefix()}${line}\n`)
        .join(''),
    );
  };
}

/**
 * Run a tool's main: fault plan first, then the command; ToolExit becomes stderr text and an exit status. Never
 * rejects (any error becomes exit status 70), so an entry starts it without awaiting it: the emulators' bundles are
 * CommonJS, which has no top-level await (scripts/build.mjs says why).
 */
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

/**
 * One option of a real tool's getopt table: its short letter and/or long names, whether it takes an argument, and
 * the key the emulator reads it by (the first of its spellings, e.g. '-u' or '--dumpfile').
 */
export interface OptSpec {
  short?: string;
  long?: string[];
  arg: 'none' | 'required' | 'optional';
}

/** A tool's (or subcommand's) option table, with the upstream file and function whose getopt call it mirrors. */
export interface OptTable {
  source: string;
  specs: OptSpec[];
}

/** Why getopt refused an argv: what glibc's getopt_long prints, without the program name. */
export class GetoptError extends Error {
  readonly kind: 'unknown' | 'missing' | 'ambiguous' | 'unexpected';
  constructor(kind: GetoptError['kind'], message: string) {
    super(message);
    this.name = 'GetoptError';
    this.kind = kind;
  }
}

export interface ParsedOpts {
  /** Values by key (flags get ''); a repeated option keeps every value, in order. */
  opts: Map<string, string[]>;
  /** The non-options, in order (GNU getopt permutes them after the options). */
  args: string[];
  /** The option that ended the parse (see parseOpts' `onOption`), if one did. */
  endedAt?: string;
}

/** Thrown inside parseOpts when an option that ends the parse is met; never leaves it. */
class ParseEnded extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`the parse ended at ${key}`);
    this.key = key;
  }
}

const keyOf = (s: OptSpec): string => (s.short ? `-${s.short}` : `--${s.long![0]}`);

/**
 * glibc getopt_long as the real tools call it: permuting, short clusters (`-rF`, `-uG`), `--long[=v]`, unambiguous
 * long prefixes, `--` ends the options. An option not in the table, a missing argument, or an argument given to a
 * flag throws GetoptError (each tool turns it into its own usage text and exit status). `onOption` sees each option
 * as the tool's getopt loop meets it, in order, with the form it was given in (`-t`, or the long name in full,
 * `--tree`, however abbreviated: getopt_long's long_opts[idx].name) and whether it came with a value (getopt's optarg
 * not NULL: `--opt=` has an empty one, an optional argument left out has none), and acts at once as that loop does:
 * it may throw (a value the tool refuses), or answer 'end' to end the parse where it stands (criu's -V prints and
 * exits), so that nothing after it is read, a bad option included.
 */
export function parseOpts(
  table: OptTable,
  argv: string[],
  onOption: (key: string, value: string, given: string, hasValue: boolean) => 'end' | undefined = () =>
    undefined,
): ParsedOpts {
  const opts = new Map<string, string[]>();
  const args: string[] = [];
  const add = (s: OptSpec, v: string, given: string, hasValue = s.arg !== 'none') => {
    opts.set(keyOf(s), [...(opts.get(keyOf(s)) ?? []), v]);
    if (onOption(keyOf(s), v, given, hasValue) === 'end') throw new ParseEnded(keyOf(s));
  };
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (a === '--') {
        args.push(...argv.slice(i + 1));
        break;
      }
      if (a.startsWith('--')) i = parseLong(table, argv, i, add);
      else if (a.startsWith('-') && a.length > 1) i = parseShort(table, argv, i, add);
      else args.push(a);
    }
  } catch (e) {
    if (e instanceof ParseEnded) return { opts, args, endedAt: e.key };
    throw e;
  }
  return { opts, args };
}

function findLong(table: OptTable, name: string): OptSpec {
  const exact = table.specs.find((s) => s.long?.includes(name));
  if (exact) return exact;
  const hits = table.specs.filter((s) => s.long?.some((l) => l.startsWith(name)));
  if (hits.length === 1) return hits[0]!;
  if (hits.length === 0) throw new GetoptError('unknown', `unrecognized option '--${name}'`);
  const names = hits.flatMap((s) => s.long!.filter((l) => l.startsWith(name)).map((l) => `'--${l}'`));
  throw new GetoptError('ambiguous', `option '--${name}' is ambiguous; possibilities: ${names.join(' ')}`);
}

function parseLong(
  table: OptTable,
  argv: string[],
  i: number,
  add: (s: OptSpec, v: string, given: string, hasValue?: boolean) => void,
): number {
  const body = argv[i]!.slice(2);
  const eq = body.indexOf('=');
  const name = eq >= 0 ? body.slice(0, eq) : body;
  const spec = findLong(table, name);
  const full = spec.long!.find((l) => l.startsWith(name))!;
  if (spec.arg === 'none') {
    if (eq >= 0) throw new GetoptError('unexpected', `option '--${full}' doesn't allow an argument`);
    add(spec, '', `--${full}`);
    return i;
  }
  if (eq >= 0 || spec.arg === 'optional') {
    add(spec, eq >= 0 ? body.slice(eq + 1) : '', `--${full}`, eq >= 0);
    return i;
  }
  const v = argv[i + 1];
  if (v === undefined) throw new GetoptError('missing', `option '--${full}' requires an argument`);
  add(spec, v, `--${full}`);
  return i + 1;
}

function parseShort(
  table: OptTable,
  argv: string[],
  i: number,
  add: (s: OptSpec, v: string, given: string, hasValue?: boolean) => void,
): number {
  const a = argv[i]!;
  for (let j = 1; j < a.length; j++) {
    const c = a[j]!;
    const spec = table.specs.find((s) => s.short === c);
    if (!spec) throw new GetoptError('unknown', `invalid option -- '${c}'`);
    if (spec.arg === 'none') {
      add(spec, '', `-${c}`);
      continue;
    }
    const rest = a.slice(j + 1);
    if (rest || spec.arg === 'optional') {
      add(spec, rest, `-${c}`, rest !== '');
      return i;
    }
    const v = argv[i + 1];
    if (v === undefined) throw new GetoptError('missing', `option requires an argument -- '${c}'`);
    add(spec, v, `-${c}`);
    return i + 1;
  }
  return i;
}

/** Shorthands for writing option tables. */
export const flag = (short: string | undefined, ...long: string[]): OptSpec =>
  short ? { short, long, arg: 'none' } : { long, arg: 'none' };
export const withArg = (short: string | undefined, ...long: string[]): OptSpec =>
  short ? { short, long, arg: 'required' } : { long, arg: 'required' };
export const optArg = (short: string | undefined, ...long: string[]): OptSpec =>
  short ? { short, long, arg: 'optional' } : { long, arg: 'optional' };

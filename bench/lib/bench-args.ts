import { parseArgs } from 'node:util';

/** A benchmark's bad flag or value: the message starts with the flag, which `flag` names. */
export class BenchArgError extends Error {
  readonly flag: string;
  constructor(flag: string, message: string) {
    super(`${flag}: ${message}`);
    this.name = 'BenchArgError';
    this.flag = flag;
  }
}

/**
 * A benchmark's options from its command line, parsed by `parse` (undefined: --help was asked for). Help is printed
 * with exit status 0; a bad flag or value (BenchArgError) is printed with the help, exit status 2.
 */
export function optionsOrExit<T>(parse: (argv: readonly string[]) => T | undefined, help: string): T {
  try {
    const o = parse(process.argv.slice(2));
    if (o) return o;
    console.log(help);
    process.exit(0);
  } catch (err) {
    if (!(err instanceof BenchArgError)) throw err;
    console.error(`${err.message}\n\n${help}`);
    process.exit(2);
  }
}

/** A flag's whole number from `min` to `max`, or `fallback` when the flag is absent; anything else is refused. */
export function wholeNumber(
  flag: string,
  raw: string | undefined,
  fallback: number,
  max: number,
  min = 1,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max)
    throw new BenchArgError(flag, `must be a whole number from ${min} to ${max}, not ${raw}`);
  return n;
}

/**
 * The values of a command line made of `--name value` (or `--name=value`) flags, each named in `names`, and --help;
 * undefined when --help was asked for. An unknown flag, a flag without its value or a positional is refused, naming
 * the flag.
 */
export function stringFlags<N extends string>(
  argv: readonly string[],
  names: readonly N[],
): Partial<Record<N, string>> | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    // node:util names the flag in its message ("Unknown option '--x'", "Option '--out <value>' argument missing").
    const flag = /'(-[^' ]+)/.exec((err as Error).message)?.[1] ?? 'arguments';
    throw new BenchArgError(flag, (err as Error).message);
  }
  if (values.help) return undefined;
  return values as Partial<Record<N, string>>;
}

/** A flag naming a file, or `fallback` when the flag is absent; an empty name is refused. */
export function fileFlag(flag: string, raw: string | undefined, fallback: string): string {
  if (raw === undefined) return fallback;
  if (raw.trim() === '') throw new BenchArgError(flag, 'must name a file');
  return raw;
}

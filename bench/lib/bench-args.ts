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

import { parseArgs } from 'node:util';
import { BenchArgError } from './bench-args.ts';

/** The startup bench's command line: every flag has a default; a bad flag or value is refused, naming the flag. */
export type StartupOptions = { toolRuns: number; serviceRuns: number; out: string };

export const startupHelp = `npm run bench:startup -- [options]

What a process start costs, in a running world (nats-server, every service, a CT running on node-a): each emulated
host tool called as the node agent calls it, beside \`node -e 0\`, and each service started again until it serves.
Writes every round and the medians as JSON.

  --tool-runs N     timed calls of each tool (default 20; 1 to 1000)
  --service-runs N  timed starts of each service (default 5; 1 to 100)
  --out FILE        results file (default bench/results/startup.json)`;

const count = (flag: string, raw: string | undefined, fallback: number, max: number): number => {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > max)
    throw new BenchArgError(flag, `must be a whole number from 1 to ${max}, not ${raw}`);
  return n;
};

/** Parse the flags (`--flag value` or `--flag=value`); undefined when --help was asked for. */
export function parseStartupArgs(argv: readonly string[]): StartupOptions | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'tool-runs': { type: 'string' },
        'service-runs': { type: 'string' },
        out: { type: 'string' },
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
  return {
    toolRuns: count('--tool-runs', values['tool-runs'], 20, 1000),
    serviceRuns: count('--service-runs', values['service-runs'], 5, 100),
    out: values.out ?? 'bench/results/startup.json',
  };
}

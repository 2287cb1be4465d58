import { fileFlag, stringFlags, wholeNumber } from './bench-args.ts';

/** The startup bench's command line: every flag has a default; a bad flag or value is refused, naming the flag. */
export type StartupOptions = { toolRuns: number; serviceRuns: number; out: string };

export const startupHelp = `npm run bench:startup -- [options]

What a process start costs, in a running world (nats-server, every service, a CT running on node-a): each emulated
host tool called as the node agent calls it, beside \`node -e 0\`, and each service started again until it serves.
Writes every round and the medians as JSON.

  --tool-runs N     timed calls of each tool (default 20; 1 to 1000)
  --service-runs N  timed starts of each service (default 5; 1 to 100)
  --out FILE        results file (default bench/results/startup.json)`;

/** Parse the flags (`--flag value` or `--flag=value`); undefined when --help was asked for. */
export function parseStartupArgs(argv: readonly string[]): StartupOptions | undefined {
  const values = stringFlags(argv, ['tool-runs', 'service-runs', 'out']);
  if (!values) return undefined;
  return {
    toolRuns: wholeNumber('--tool-runs', values['tool-runs'], 20, 1000),
    serviceRuns: wholeNumber('--service-runs', values['service-runs'], 5, 100),
    out: fileFlag('--out', values.out, 'bench/results/startup.json'),
  };
}

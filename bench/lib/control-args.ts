import { BenchArgError } from './bench-args.ts';

/** The control bench's command line: every flag has a default; a bad flag or value is refused, naming the flag. */

export type ControlOptions = {
  migrations: number;
  nodes: number;
  /** How long the null host and the null transfer take to answer each step. */
  delayMs: number;
  /** Finished migrations the replay rebuilds (the run's own, cloned under new ids up to this number). */
  replay: number;
  /** Give up when no migration ended for this long (the report then says how many ended). */
  stallS: number;
  /** Give up this long after the first request, however the migrations are going. */
  timeoutS: number;
  out: string;
  /** Run this coordinator bundle instead of services/coordinator/dist/main.mjs (to measure another version). */
  coordinator?: string;
};

export const controlHelp = `npm run bench:control -- [options]

Many migrations at once through one coordinator (its own process, from its bundle) on one nats-server, with node
agents and image streamers that run the same code as always over a null host: every host step and every transfer
answers after --delay-ms without touching a CT. Then a raw JetStream compare-and-set append rate on the same
server, and a replay: the status of --replay finished migrations rebuilt from the log (each log's last message,
its seal, where the seal stands for the log unread; beside it, replays that read every message), against a raw read
of the same stream. Writes the numbers as JSON.

  --migrations N   migrations, each of its own CT (default 1000)
  --nodes N        emulated nodes, each with a node agent and an image streamer (default 20; 2 to 200)
  --delay-ms N     answer time of every host step and transfer (default 5)
  --replay N       finished migrations to rebuild in the replay (default 10000; 0 skips the replay)
  --stall-s N      stop waiting when no migration ended for this long (default 120)
  --timeout-s N    stop waiting this long after the first request (default 1200)
  --out FILE       results file (default bench/results/control.json)
  --coordinator F  run this coordinator bundle instead of the built one (e.g. one built from an older commit)`;

const defaults: ControlOptions = {
  migrations: 1000,
  nodes: 20,
  delayMs: 5,
  replay: 10_000,
  stallS: 120,
  timeoutS: 1200,
  out: 'bench/results/control.json',
};

type NumericKey = Exclude<keyof ControlOptions, 'out' | 'coordinator'>;
const numeric: Record<string, { key: NumericKey; min: number; max: number }> = {
  '--migrations': { key: 'migrations', min: 1, max: 100_000 },
  '--nodes': { key: 'nodes', min: 2, max: 200 },
  '--delay-ms': { key: 'delayMs', min: 0, max: 60_000 },
  '--replay': { key: 'replay', min: 0, max: 1_000_000 },
  '--stall-s': { key: 'stallS', min: 1, max: 86_400 },
  '--timeout-s': { key: 'timeoutS', min: 1, max: 86_400 },
};

/** Parse `--flag value` pairs (or `--flag=value`); undefined when --help was asked for. */
export function parseControlArgs(argv: readonly string[]): ControlOptions | undefined {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    if (flag === '--help' || flag === '-h') return undefined;
    const value = inline ?? argv[++i];
    if (value === undefined) throw new BenchArgError(flag, 'needs a value');
    if (flag === '--out' || flag === '--coordinator') {
      o[flag === '--out' ? 'out' : 'coordinator'] = value;
      continue;
    }
    const spec = numeric[flag];
    if (!spec) throw new BenchArgError(flag, 'unknown option (see --help)');
    const n = Number(value);
    if (!Number.isInteger(n) || n < spec.min || n > spec.max)
      throw new BenchArgError(flag, `must be a whole number from ${spec.min} to ${spec.max}, not ${value}`);
    o[spec.key] = n;
  }
  return o;
}

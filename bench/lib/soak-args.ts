import { BenchArgError } from './bench-args.ts';

/** The soak's command line: every flag has a default, a bad flag or value is refused naming the flag. */

export type Range = { min: number; max: number };

export type SoakOptions = {
  /** How long the chaos runs and new migrations are started; then every migration is waited for. */
  minutes: number;
  nodes: number;
  /** Seeds every choice: migration targets and modes (one sequence per CT), kill victims, moments and pauses. */
  seed: number;
  cts: number;
  coordinators: number;
  /** Migrations running at once (each CT runs at most one). */
  parallel: number;
  /** A migration not ended this long after it was accepted counts as stuck. */
  deadlineS: number;
  /** Seconds between the end of one kill's restart and the next kill. */
  killGapS: Range;
  /** Seconds a killed service stays down. */
  downS: Range;
  chaos: boolean;
  out: string;
  keep: boolean;
};

export const soakHelp = `npm run soak -- [options]

Migrations back and forth between emulated nodes (several at once, live and restart, CTs with shared and local
disks) on a 3-server JetStream cluster with R3 streams, while a chaos loop kill -9s a random service (a node
agent, an image streamer, a coordinator, a nats-server) and starts it again. Every migration's end is checked
against the data-safety invariants; at the end the event log and the replicas are audited. Writes the results as
JSON and exits 1 when an invariant broke, a migration got stuck, an event was lost or a replica count is not 3.

  --minutes N          minutes of chaos and new migrations (default 20); then every migration is waited for
  --nodes N            emulated nodes, each with a node agent and an image streamer (default 3; 2 to 8)
  --seed N             seed of every random choice (default 1)
  --cts N              containers (default 4; alternately with 1 shared disk, none, 2, none, …)
  --coordinators N     coordinators racing on the same log (default 2)
  --parallel N         migrations at once (default 3)
  --deadline-s N       a migration still running this long after it was accepted is stuck (default 300)
  --kill-gap-s A-B     seconds between kills, uniform in [A, B] (default 8-25)
  --down-s A-B         seconds a killed service stays down (default 0.5-6)
  --no-chaos           no kills (a baseline of the same load)
  --out FILE           results file (default bench/results/soak.json)
  --keep               keep the temporary folders and service logs (kept anyway when the soak fails)`;

const defaults: SoakOptions = {
  minutes: 20,
  nodes: 3,
  seed: 1,
  cts: 4,
  coordinators: 2,
  parallel: 3,
  deadlineS: 300,
  killGapS: { min: 8, max: 25 },
  downS: { min: 0.5, max: 6 },
  chaos: true,
  out: 'bench/results/soak.json',
  keep: false,
};

type NumberFlag = { key: 'minutes' | 'deadlineS'; min: number; max?: number; integer: false };
type IntFlag = {
  key: 'nodes' | 'seed' | 'cts' | 'coordinators' | 'parallel';
  min: number;
  max?: number;
  integer: true;
};
const numeric: Record<string, NumberFlag | IntFlag> = {
  '--minutes': { key: 'minutes', min: 0, integer: false },
  '--deadline-s': { key: 'deadlineS', min: 1, integer: false },
  '--nodes': { key: 'nodes', min: 2, max: 8, integer: true },
  '--seed': { key: 'seed', min: 0, integer: true },
  '--cts': { key: 'cts', min: 1, max: 50, integer: true },
  '--coordinators': { key: 'coordinators', min: 1, integer: true },
  '--parallel': { key: 'parallel', min: 1, integer: true },
};
const ranges: Record<string, 'killGapS' | 'downS'> = { '--kill-gap-s': 'killGapS', '--down-s': 'downS' };

function number(
  flag: string,
  raw: string | undefined,
  spec: { min: number; max?: number; integer: boolean },
): number {
  if (raw === undefined || raw.startsWith('--')) throw new BenchArgError(flag, 'needs a value');
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new BenchArgError(flag, `not a number: ${raw}`);
  if (spec.integer && !Number.isInteger(n)) throw new BenchArgError(flag, `not an integer: ${raw}`);
  if (n < spec.min) throw new BenchArgError(flag, `must be at least ${spec.min}, got ${raw}`);
  if (spec.max !== undefined && n > spec.max)
    throw new BenchArgError(flag, `must be at most ${spec.max}, got ${raw}`);
  return n;
}

function range(flag: string, raw: string | undefined): Range {
  if (raw === undefined || raw.startsWith('--')) throw new BenchArgError(flag, 'needs a value A-B');
  const m = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(raw);
  if (!m) throw new BenchArgError(flag, `expected A-B in seconds (e.g. 8-25), got ${raw}`);
  const r = { min: Number(m[1]), max: Number(m[2]) };
  if (r.min > r.max) throw new BenchArgError(flag, `${r.min} is more than ${r.max}`);
  return r;
}

/** The options from argv (without node and the script), or 'help'; throws BenchArgError naming the bad flag. */
export function parseSoakArgs(argv: readonly string[]): SoakOptions | 'help' {
  const o: SoakOptions = { ...defaults, killGapS: { ...defaults.killGapS }, downS: { ...defaults.downS } };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const n = numeric[flag];
    const r = ranges[flag];
    if (flag === '--help' || flag === '-h') return 'help';
    else if (n) o[n.key] = number(flag, argv[++i], n);
    else if (r) o[r] = range(flag, argv[++i]);
    else if (flag === '--no-chaos') o.chaos = false;
    else if (flag === '--keep') o.keep = true;
    else if (flag === '--out') {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new BenchArgError(flag, 'needs a file name');
      o.out = v;
    } else throw new BenchArgError(flag, 'unknown flag (see --help)');
  }
  if (o.parallel > o.cts) o.parallel = o.cts;
  return o;
}

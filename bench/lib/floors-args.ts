import { fileFlag, stringFlags, wholeNumber } from './bench-args.ts';

/** The floors bench's command line: every flag has a default; a bad flag or value is refused, naming the flag. */
export type FloorsOptions = { fillRounds: number; idleMs: number; appends: number; out: string };

export const floorsHelp = `npm run bench:floors -- [options]

What this machine allows beneath two of haul's goals, measured the same way every time:
- a restore's memory: 256 MiB of fresh memory filled on huge pages (as the emulated CT's init gets it), in a new
  process, once after --idle-ms of quiet and once right after another process freed as much. A guest that hands
  its free memory back to its host pays the host's backing again after the quiet.
- a step's control round trip: compare-and-set appends of an event-sized message to one subject of a stream made
  like the event stream, one after the other, on a nats-server of its own: the time each waits for its ack.
Writes every round and the medians as JSON.

  --fill-rounds N  fills of each kind (default 6; 1 to 100)
  --idle-ms N      quiet before an "after idle" fill (default 3000; 0 to 60000)
  --appends N      timed appends (default 300; 1 to 100000)
  --out FILE       results file (default bench/results/floors.json)`;

/** Parse the flags (`--flag value` or `--flag=value`); undefined when --help was asked for. */
export function parseFloorsArgs(argv: readonly string[]): FloorsOptions | undefined {
  const values = stringFlags(argv, ['fill-rounds', 'idle-ms', 'appends', 'out']);
  if (!values) return undefined;
  return {
    fillRounds: wholeNumber('--fill-rounds', values['fill-rounds'], 6, 100),
    idleMs: wholeNumber('--idle-ms', values['idle-ms'], 3000, 60_000, 0),
    appends: wholeNumber('--appends', values.appends, 300, 100_000),
    out: fileFlag('--out', values.out, 'bench/results/floors.json'),
  };
}

import { fileFlag, stringFlags, wholeNumber } from './bench-args.ts';

/** The side-by-side bench's command line: every flag has a default; a bad flag or value is refused, naming it. */
export type SideBySideOptions = { rounds: number; smallMb: number; largeMb: number; out: string };

export const sideBySideHelp = `npm run bench:side-by-side -- [options]

Two migrations that share their nodes, as admission allows (two per node by default): a large CT from node-a to
node-b in its iterative phase (criu pre-dumps on node-a, their images to node-b), and a small CT migrated between the
same nodes meanwhile. Each round starts a world of its own (a nats-server, the services, the emulated nodes), starts
the large migration, and once its first pre-dump succeeded, the small one; it reports both migrations' frozen time and
downtime, and the small one's control overhead in its downtime window. Writes every round and the medians as JSON.

  --rounds N     rounds (default 3; 1 to 20)
  --small-mb N   the small CT's memory in MiB (default 64; 16 to 1024)
  --large-mb N   the large CT's memory in MiB (default 512; 16 to 1024: the emulated criu's pre-dump fails beyond)
  --out FILE     results file (default bench/results/side-by-side.json)`;

/** Parse the flags (`--flag value` or `--flag=value`); undefined when --help was asked for. */
export function parseSideBySideArgs(argv: readonly string[]): SideBySideOptions | undefined {
  const values = stringFlags(argv, ['rounds', 'small-mb', 'large-mb', 'out']);
  if (!values) return undefined;
  return {
    rounds: wholeNumber('--rounds', values.rounds, 3, 20),
    smallMb: wholeNumber('--small-mb', values['small-mb'], 64, 1024, 16),
    largeMb: wholeNumber('--large-mb', values['large-mb'], 512, 1024, 16),
    out: fileFlag('--out', values.out, 'bench/results/side-by-side.json'),
  };
}

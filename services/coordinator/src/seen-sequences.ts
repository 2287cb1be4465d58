/**
 * The stream sequences of the event stream this coordinator's consumer has delivered to it. The consumer reads
 * every subject in stream order, so an event of a migration is the next one after the sequence its state was
 * folded up to exactly when every sequence in between was delivered here: those were other migrations' events (or
 * this migration's, already folded). A sequence that never came (another coordinator on the same durable consumer
 * took it, or it came before this process started) is a hole, and a migration whose next event lies beyond a hole
 * reads the missing part of its log instead.
 */
export type SeenSequences = ReturnType<typeof createSeenSequences>;

/** Holes remembered at most; past that, the oldest ones are forgotten together with everything before them. */
const maxHoles = 1024;

export function createSeenSequences() {
  /** Sequences before `first` are unknown; from `first` to `high`, every one was seen except those in `holes`. */
  let first: number | undefined;
  let high = 0;
  /** Ranges [lo, hi] of sequences not seen, in order, disjoint, within (first, high). */
  const holes: [number, number][] = [];

  function fill(seq: number): void {
    const i = holes.findIndex(([lo, hi]) => lo <= seq && seq <= hi);
    if (i < 0) return;
    const [lo, hi] = holes[i]!;
    const rest: [number, number][] = [];
    if (lo < seq) rest.push([lo, seq - 1]);
    if (seq < hi) rest.push([seq + 1, hi]);
    holes.splice(i, 1, ...rest);
  }

  return {
    /** A message of the stream reached this process (whatever it holds: an event, junk, a redelivery). */
    saw(seq: number): void {
      if (first === undefined) {
        first = high = seq;
        return;
      }
      if (seq > high) {
        if (seq > high + 1) holes.push([high + 1, seq - 1]);
        high = seq;
        while (holes.length > maxHoles) first = holes.shift()![1] + 1;
      } else if (seq >= first) fill(seq);
    },
    /** Was every sequence from `from` to `to` seen here? An empty range was. */
    covered(from: number, to: number): boolean {
      if (from > to) return true;
      if (first === undefined || from < first || to > high) return false;
      for (let i = holes.length - 1; i >= 0; i--) {
        const [lo, hi] = holes[i]!;
        if (hi < from) return true;
        if (lo <= to) return false;
      }
      return true;
    },
  };
}

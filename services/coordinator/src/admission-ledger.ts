import type { NatsConnection } from '@nats-io/transport-node';
import {
  BusError,
  admissionLedgerKey,
  buckets,
  decodeJson,
  encodeJson,
  isTransient,
  isWrongLastSequence,
  openBucket,
  retryTransient,
  type Logger,
} from '@haul/bus';
import { errorCodes } from '@haul/domain';

/** An admitted migration that has not finished: its CT is taken, and it counts against both nodes. */
export type AdmissionEntry = {
  migrationId: string;
  requestId: string;
  ctid: string;
  source: string;
  target: string;
  imageRoots: { source: string; target: string };
  /** When it was admitted (refreshed when a retry of the same request completes it). */
  admittedAt: string;
};

/** A change of the ledger: the new entries (none = unchanged) and what the caller gets back. */
export type LedgerChange<R> = (entries: readonly AdmissionEntry[]) => {
  entries?: AdmissionEntry[];
  result: R;
};

const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function isEntry(v: unknown): v is AdmissionEntry {
  if (!isObject(v)) return false;
  const roots = v['imageRoots'];
  return (
    ['migrationId', 'requestId', 'ctid', 'source', 'target'].every((k) => isString(v[k])) &&
    isString(v['admittedAt']) &&
    !Number.isNaN(Date.parse(v['admittedAt'])) &&
    isObject(roots) &&
    isString(roots['source']) &&
    isString(roots['target'])
  );
}

/** The stored ledger `{"entries": [...]}`, or why it is not one. */
export function parseLedger(
  bytes: Uint8Array,
): { ok: true; entries: AdmissionEntry[] } | { ok: false; reason: string } {
  let raw: unknown;
  try {
    raw = decodeJson(bytes);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!isObject(raw) || !Array.isArray(raw['entries'])) return { ok: false, reason: 'no entries list' };
  const bad = raw['entries'].findIndex((e) => !isEntry(e));
  if (bad >= 0) return { ok: false, reason: `entries.${bad} is not an admission entry` };
  return { ok: true, entries: raw['entries'] as AdmissionEntry[] };
}

const maxConflicts = 20;

export type LedgerOptions = {
  /**
   * The active migrations according to the log, for a ledger that is missing (first start, or deleted) or
   * unreadable (junk written by hand). Without it such a ledger reads as empty and is not written.
   */
  rebuild?: () => Promise<AdmissionEntry[]>;
};

/**
 * The ledger at one revision, as read or as this process wrote it. `from`: `stored`, the entries are the value
 * stored at `revision` (parsed from it, or written by this process); `rebuilt` from the log for a missing or
 * unreadable ledger, not written yet; `nothing`, such a ledger read as empty (no rebuild asked for). Only a stored
 * snapshot is kept as known: a missing or junk ledger is rebuilt by the next change that can, never written over
 * from an empty list.
 */
type Snapshot = {
  entries: readonly AdmissionEntry[];
  revision: number;
  exists: boolean;
  from: 'stored' | 'rebuilt' | 'nothing';
};

/** A change waiting for the next write, and whom to answer. */
type Pending = {
  change: LedgerChange<unknown>;
  opts: LedgerOptions;
  resolve: (r: unknown) => void;
  reject: (err: unknown) => void;
};

/**
 * One connection's writer (every ledger of a connection shares it): the ledger as last read or written on it, the
 * bucket's stream it was read from (its creation time: a bucket deleted and made again numbers its messages anew),
 * and the changes waiting for the next write. At most one write is in flight.
 */
type Writer = {
  known: Snapshot | undefined;
  bucketCreated: string | undefined;
  pending: Pending[];
  writing: boolean;
};
const writers = new WeakMap<NatsConnection, Writer>();
const writerOf = (nc: NatsConnection): Writer => {
  let w = writers.get(nc);
  if (!w) writers.set(nc, (w = { known: undefined, bucketCreated: undefined, pending: [], writing: false }));
  return w;
};

/**
 * The admission ledger: one KV value holding every admitted, unfinished migration. Every change is a
 * compare-and-set on the value's revision (kv.update / kv.create), so two coordinators never both admit against
 * the same ledger. How one connection keeps that cheap with many migrations admitted (writes from what it knows,
 * checks an answer that writes nothing, puts the changes of one moment into one write): docs/protocol.md,
 * "Admission".
 */
export function createLedger(nc: NatsConnection, log: Logger) {
  const writer = writerOf(nc);

  /** The current entries and the revision to update, rebuilding a missing or unreadable ledger when asked. */
  async function load(opts: LedgerOptions): Promise<Snapshot> {
    const kv = await openBucket(nc, buckets.admission);
    const e = await retryTransient(() => kv.get(admissionLedgerKey));
    const exists = e?.operation === 'PUT';
    const parsed = e && exists ? parseLedger(e.value) : { ok: false as const, reason: 'missing' };
    if (parsed.ok) return { entries: parsed.entries, revision: e!.revision, from: 'stored', exists };
    if (!opts.rebuild) return { entries: [], revision: e?.revision ?? 0, from: 'nothing', exists };
    const entries = await opts.rebuild();
    const level = parsed.reason === 'missing' ? 'info' : 'error';
    log[level]({ reason: parsed.reason, active: entries.length }, 'admission ledger rebuilt from the log');
    return { entries, revision: e?.revision ?? 0, from: 'rebuilt', exists };
  }

  /** Store `entries` over `base`; the revision they are stored at. */
  async function write(entries: readonly AdmissionEntry[], base: Snapshot): Promise<number> {
    const kv = await openBucket(nc, buckets.admission);
    const value = encodeJson({ entries });
    // create() also takes over a deleted key; update() needs the revision it read.
    return base.exists
      ? kv.update(admissionLedgerKey, value, base.revision)
      : kv.create(admissionLedgerKey, value);
  }

  /**
   * Whether `known` is still the ledger: its bucket is the same stream, which still holds the known revision and
   * nothing after it (a write, a delete or a purge of the key all come after it; a purge of the stream drops it).
   */
  async function isCurrent(known: Snapshot): Promise<boolean> {
    const kv = await openBucket(nc, buckets.admission);
    const { streamInfo } = await retryTransient(() => kv.status());
    const same = writer.bucketCreated === undefined || writer.bucketCreated === streamInfo.created;
    writer.bucketCreated = streamInfo.created;
    const { first_seq, last_seq } = streamInfo.state;
    return same && first_seq <= known.revision && last_seq === known.revision;
  }

  /** The known ledger, or the stored one (`read`) when nothing is known or what is known is `stale`. */
  async function base(batch: readonly Pending[], stale: boolean): Promise<{ from: Snapshot; read: boolean }> {
    if (writer.known && !stale) return { from: writer.known, read: false };
    const rebuild = batch.find((p) => p.opts.rebuild)?.opts.rebuild;
    const from = await load(rebuild ? { rebuild } : {});
    writer.known = from.from === 'stored' ? from : undefined;
    return { from, read: true };
  }

  /** Decide every change of `batch` in turn on `entries`; a change that throws is answered with its error. */
  function decideAll(batch: readonly Pending[], entries: readonly AdmissionEntry[]) {
    let now = entries;
    let changed = false;
    const answers = batch.map((p) => {
      try {
        const out = p.change(now);
        if (out.entries) {
          now = out.entries;
          changed = true;
        }
        return { ok: true as const, result: out.result };
      } catch (err) {
        return { ok: false as const, err };
      }
    });
    return { entries: now, changed, answers };
  }

  /** Store the changes of `batch` under compare-and-set, deciding them again on a fresh read after a conflict. */
  async function commit(batch: readonly Pending[]): Promise<ReturnType<typeof decideAll>['answers']> {
    let stale = false;
    for (let attempt = 0; attempt < maxConflicts; attempt++) {
      const { from, read } = await base(batch, stale);
      const d = decideAll(batch, from.entries);
      // A rebuilt ledger is written even unchanged.
      if (!d.changed && from.from !== 'rebuilt') {
        // Nothing to write: answers on a read are fresh; answers on what this process knows, once it is current.
        if (read || (await isCurrent(from))) return d.answers;
        stale = true;
        continue;
      }
      try {
        const revision = await write(d.entries, from);
        writer.known = { entries: d.entries, revision, exists: true, from: 'stored' };
        return d.answers;
      } catch (err) {
        // Lost the race (or cannot tell after a timeout): read again and decide again.
        writer.known = undefined;
        if (!isWrongLastSequence(err) && !isTransient(err)) throw err;
        stale = true;
      }
    }
    throw new BusError(
      errorCodes.ledgerContended,
      `the admission ledger changed under this coordinator ${maxConflicts} times in a row`,
      true,
    );
  }

  /** Write the waiting changes, a batch at a time, until none waits. */
  async function drain(): Promise<void> {
    writer.writing = true;
    try {
      while (writer.pending.length > 0) {
        const batch = writer.pending.splice(0);
        try {
          const answers = await commit(batch);
          answers.forEach((a, i) => (a.ok ? batch[i]!.resolve(a.result) : batch[i]!.reject(a.err)));
        } catch (err) {
          writer.known = undefined;
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      writer.writing = false;
    }
  }

  return {
    /** The entries as they are (a missing or unreadable ledger reads as empty; nothing is written). */
    async read(): Promise<AdmissionEntry[]> {
      const known = writer.known;
      if (known && (await isCurrent(known))) return [...known.entries];
      return [...(await load({})).entries];
    },

    /**
     * Apply `change` under compare-and-set, again on a fresh read whenever another writer got there first. `change`
     * may be called more than once, on entries that turn out stale, so it decides from the entries it is given alone
     * and says what it decided in its result (the caller logs it once answered). The answer comes once the write that
     * holds the change is stored, or, for a change that writes nothing, once the ledger it was decided on is known
     * current. A change that throws fails alone; a failure to read or write the ledger (not a lost race) fails every
     * change of that write.
     */
    change<R>(change: LedgerChange<R>, opts: LedgerOptions = {}): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        writer.pending.push({ change, opts, resolve: resolve as (r: unknown) => void, reject });
        if (!writer.writing) void drain();
      });
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;

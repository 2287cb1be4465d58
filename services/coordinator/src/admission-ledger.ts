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

/** The ledger at one revision: as read, or as this process wrote it. `dirty`: rebuilt, not stored yet. */
type Snapshot = { entries: readonly AdmissionEntry[]; revision: number; exists: boolean; dirty: boolean };

/** A change waiting for the next write, and whom to answer. */
type Pending = {
  change: LedgerChange<unknown>;
  opts: LedgerOptions;
  resolve: (r: unknown) => void;
  reject: (err: unknown) => void;
};

/**
 * One connection's writer (every ledger of a connection shares it): the ledger as this process last read or wrote
 * it, and the changes waiting for the next write. At most one write is in flight; the changes that arrive meanwhile
 * go together into the one after it.
 */
type Writer = { known: Snapshot | undefined; pending: Pending[]; writing: boolean };
const writers = new WeakMap<NatsConnection, Writer>();
const writerOf = (nc: NatsConnection): Writer => {
  let w = writers.get(nc);
  if (!w) writers.set(nc, (w = { known: undefined, pending: [], writing: false }));
  return w;
};

/**
 * The admission ledger: one KV value holding every admitted, unfinished migration. Every change is a
 * compare-and-set on the value's revision (kv.update / kv.create), so two coordinators never both admit against
 * the same ledger.
 *
 * What one process does to keep that cheap with a thousand migrations admitted (the value is then about 250 KB, and every
 * admission, confirmation and release used to read it, parse it and write it whole, one after the other):
 * - **It writes from what it knows.** The ledger as this process last wrote or read it is the base of the next
 *   change, with no read first: the compare-and-set on its revision fails if anybody wrote since, and then the
 *   ledger is read again and every change of the write decided again, as before.
 * - **A change that writes nothing is checked fresh.** Its answer (a refusal, an entry that is already there) is
 *   given only once the bucket's last sequence is still the known revision (a stream info, a few hundred bytes),
 *   else after a read.
 * - **Changes go together.** While a write is in flight, the changes that come meanwhile wait, then go in one
 *   write, each decided on the entries the ones before it left, in the order they came. Each caller is answered
 *   once the write that holds its change is stored.
 */
export function createLedger(nc: NatsConnection, log: Logger) {
  const writer = writerOf(nc);

  /** The current entries and the revision to update, rebuilding a missing or unreadable ledger when asked. */
  async function load(opts: LedgerOptions): Promise<Snapshot> {
    const kv = await openBucket(nc, buckets.admission);
    const e = await retryTransient(() => kv.get(admissionLedgerKey));
    const exists = e?.operation === 'PUT';
    const parsed = e && exists ? parseLedger(e.value) : { ok: false as const, reason: 'missing' };
    if (parsed.ok) return { entries: parsed.entries, revision: e!.revision, dirty: false, exists };
    if (!opts.rebuild) return { entries: [], revision: e?.revision ?? 0, dirty: false, exists };
    const entries = await opts.rebuild();
    const level = parsed.reason === 'missing' ? 'info' : 'error';
    log[level]({ reason: parsed.reason, active: entries.length }, 'admission ledger rebuilt from the log');
    return { entries, revision: e?.revision ?? 0, dirty: true, exists };
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

  /** Whether `known` is still the ledger: nothing was stored in its bucket after it. */
  async function isCurrent(known: Snapshot): Promise<boolean> {
    if (!known.exists || known.dirty) return false;
    const kv = await openBucket(nc, buckets.admission);
    const status = await retryTransient(() => kv.status());
    return status.streamInfo.state.last_seq === known.revision;
  }

  /** The known ledger, or the stored one (`read`) when nothing is known or what is known is `stale`. */
  async function base(batch: readonly Pending[], stale: boolean): Promise<{ from: Snapshot; read: boolean }> {
    if (writer.known && !stale) return { from: writer.known, read: false };
    const rebuild = batch.find((p) => p.opts.rebuild)?.opts.rebuild;
    const from = await load(rebuild ? { rebuild } : {});
    writer.known = from.dirty ? undefined : from;
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
      if (!d.changed && !from.dirty) {
        // Nothing to write: answers on a read are fresh; answers on what this process knows, once it is current.
        if (read || (await isCurrent(from))) return d.answers;
        stale = true;
        continue;
      }
      try {
        const revision = await write(d.entries, from);
        writer.known = { entries: d.entries, revision, exists: true, dirty: false };
        return d.answers;
      } catch (err) {
        // Lost the race (or cannot tell after a timeout): read again and decide again.
        writer.known = undefined;
        if (!isWrongLastSequence(err) && !isTransient(err)) throw err;
        stale = true;
      }
    }
    throw new BusError(
      'HAUL_LEDGER_CONTENDED',
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
     * may be called more than once, and must decide from the entries it is given alone.
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

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

/** Writers of one connection take turns (a cheap queue in front of the compare-and-set, not instead of it). */
const queues = new WeakMap<NatsConnection, Promise<unknown>>();
function inTurn<T>(nc: NatsConnection, fn: () => Promise<T>): Promise<T> {
  const next = (queues.get(nc) ?? Promise.resolve()).then(fn, fn);
  queues.set(
    nc,
    next.catch(() => undefined),
  );
  return next;
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
 * The admission ledger: one KV value holding every admitted, unfinished migration. Every change is a
 * compare-and-set on the value's revision (kv.update / kv.create), so two coordinators never both admit against
 * the same ledger; in one process, changes also take turns.
 */
export function createLedger(nc: NatsConnection, log: Logger) {
  /** The current entries and the revision to update, rebuilding a missing or unreadable ledger when asked. */
  async function load(
    opts: LedgerOptions,
  ): Promise<{ entries: AdmissionEntry[]; revision: number; dirty: boolean; exists: boolean }> {
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

  async function write(entries: AdmissionEntry[], revision: number, exists: boolean): Promise<void> {
    const kv = await openBucket(nc, buckets.admission);
    const value = encodeJson({ entries });
    // create() also takes over a deleted key; update() needs the revision it read.
    if (exists) await kv.update(admissionLedgerKey, value, revision);
    else await kv.create(admissionLedgerKey, value);
  }

  return {
    /** The entries as they are (a missing or unreadable ledger reads as empty; nothing is written). */
    async read(): Promise<AdmissionEntry[]> {
      return (await load({})).entries;
    },

    /** Apply `change` under compare-and-set, again on a fresh read whenever another writer got there first. */
    change<R>(change: LedgerChange<R>, opts: LedgerOptions = {}): Promise<R> {
      return inTurn(nc, async () => {
        for (let attempt = 0; attempt < maxConflicts; attempt++) {
          const { entries, revision, dirty, exists } = await load(opts);
          const out = change(entries);
          if (!out.entries && !dirty) return out.result;
          try {
            await write(out.entries ?? entries, revision, exists);
            return out.result;
          } catch (err) {
            // Lost the race (or cannot tell after a timeout): read again and decide again.
            if (!isWrongLastSequence(err) && !isTransient(err)) throw err;
          }
        }
        throw new BusError(
          'HAUL_LEDGER_CONTENDED',
          `the admission ledger changed under this coordinator ${maxConflicts} times in a row`,
          true,
        );
      });
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;

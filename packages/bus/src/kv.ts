import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import type { SchemaName, Validators } from '@haul/schemas';
import { retryTransient } from './retry.ts';

const cache = new WeakMap<NatsConnection, Map<string, Promise<KV>>>();

/** Open a KV bucket that ensureTopology created (cached per connection once open). */
export function openBucket(nc: NatsConnection, name: string): Promise<KV> {
  let m = cache.get(nc);
  if (!m) cache.set(nc, (m = new Map<string, Promise<KV>>()));
  let kv = m.get(name);
  if (!kv) {
    kv = retryTransient(() => new Kvm(nc).open(name));
    m.set(name, kv);
    // A failed open is not cached: the next call tries again (a service outlives an election at its start).
    kv.catch(() => m.delete(name));
  }
  return kv;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
export const encodeJson = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));
export const decodeJson = (b: Uint8Array): unknown => JSON.parse(dec.decode(b));

/** A bucket value decoded and checked against its schema, or why it is not one. */
export function decodeValid<T>(
  validators: Validators,
  schema: SchemaName,
  bytes: Uint8Array,
): { ok: true; value: T } | { ok: false; reason: string } {
  let raw: unknown;
  try {
    raw = decodeJson(bytes);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const v = validators.validate<T>(schema, raw);
  return v.ok ? v : { ok: false, reason: v.error.message };
}

/**
 * The keys a bucket holds, each once. KV.keys() reads the last value of each key with a consumer that also delivers
 * what is written while it reads, so a key written meanwhile (a node's heartbeat, every 2 s) would come twice.
 */
export async function keysOf(kv: Pick<KV, 'keys'>): Promise<string[]> {
  const keys = new Set<string>();
  for await (const k of await kv.keys()) keys.add(k);
  return [...keys];
}

/**
 * Every current value of a bucket that is valid under `schema`, with its key. Anything else (not JSON, breaking the
 * schema) is reported to `onJunk` and skipped: a stray value written by hand never stops a reader.
 */
export async function* validValues<T>(
  kv: KV,
  validators: Validators,
  schema: SchemaName,
  onJunk: (key: string, reason: string) => void,
): AsyncGenerator<{ key: string; value: T }> {
  for (const key of await keysOf(kv)) {
    const e = await kv.get(key);
    if (!e || e.operation !== 'PUT') continue;
    const d = decodeValid<T>(validators, schema, e.value);
    if (d.ok) yield { key, value: d.value };
    else onJunk(key, d.reason);
  }
}

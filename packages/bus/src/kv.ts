import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { retryTransient } from './retry.ts';

const cache = new WeakMap<NatsConnection, Map<string, Promise<KV>>>();

/** Open a KV bucket that ensureTopology created (cached per connection). */
export function openBucket(nc: NatsConnection, name: string): Promise<KV> {
  let m = cache.get(nc);
  if (!m) cache.set(nc, (m = new Map<string, Promise<KV>>()));
  let kv = m.get(name);
  if (!kv) {
    kv = retryTransient(() => new Kvm(nc).open(name));
    m.set(name, kv);
  }
  return kv;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
export const encodeJson = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));
export const decodeJson = (b: Uint8Array): unknown => JSON.parse(dec.decode(b));

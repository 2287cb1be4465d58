import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/transport-node';
import { headers, type MsgHdrs } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { createEventLog, subjects, type Trust } from '@haul/bus';
import { evolve, initialState, projectStatus, type MigrationState } from '@haul/domain';
import type { MigrationStatus, Validators } from '@haul/schemas';
import type { TestIdentities } from '@haul/test';
import { lastSeqOf } from './control-stream.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A migration id of the same length as the coordinator's (`m-` + 24 hex digits), for the k-th copy of `mid`. */
const copyId = (mid: string, k: number): string =>
  `m-${createHash('sha256').update(`${mid}#${k}`).digest('hex').slice(0, 24)}`;

/** A message of the event stream as the bench read it: its bytes and the public key that signed it. */
export type StoredMessage = { data: Uint8Array; signer: string };

/** Signs a copy as the identity that signed the original (the registry maps its public key to its name). */
export type Resign = (signer: string, subject: string, body: Uint8Array) => MsgHdrs | undefined;

export function resigner(ids: TestIdentities): Resign {
  const registry = JSON.parse(readFileSync(ids.registryFile, 'utf8')) as {
    identities: { name: string; publicKey: string }[];
  };
  const byKey = new Map(registry.identities.map((i) => [i.publicKey, ids.trust(i.name)]));
  return (signer, subject, body) => {
    const sig = byKey.get(signer)?.sign(subject, body);
    if (!sig) return undefined;
    const h = headers();
    for (const [k, v] of Object.entries(sig)) h.set(k, v);
    return h;
  };
}

/**
 * Fill the event stream up to `want` finished migrations: each finished log of the run appended again under new
 * migration ids (every occurrence of the id in the events is replaced, so commands, event ids and folders stay
 * consistent), in the original order per migration, each copy signed again by the identity that signed its
 * original (a signature covers the subject and the bytes, both changed), so a reader believes the copies as it
 * believed the run. Returns how many migrations the stream then holds.
 */
export async function cloneFinished(
  nc: NatsConnection,
  logs: ReadonlyMap<string, readonly StoredMessage[]>,
  want: number,
  resign: Resign,
): Promise<number> {
  const js = jetstream(nc);
  const window: Promise<unknown>[] = [];
  let have = logs.size;
  for (let k = 1; have < want; k++) {
    for (const [mid, events] of logs) {
      if (have >= want) break;
      const id = copyId(mid, k);
      const subject = subjects.events(id);
      for (const { data, signer } of events) {
        const body = enc.encode(dec.decode(data).replaceAll(mid, id));
        const h = resign(signer, subject, body);
        window.push(js.publish(subject, body, h ? { headers: h } : {}));
        if (window.length >= 512) await Promise.all(window.splice(0));
      }
      have++;
    }
  }
  await Promise.all(window);
  return have;
}

/**
 * Rebuild the status of every migration from the log: one pass over the stream through the event log (each event
 * decoded and checked against its schema), folded per migration with the core's evolve, then projected.
 */
export async function replayStatuses(
  nc: NatsConnection,
  validators: Validators,
  trust: Trust,
): Promise<{ seconds: number; statuses: MigrationStatus[] }> {
  const eventLog = createEventLog(nc, validators, trust);
  const last = await lastSeqOf(nc);
  const t0 = performance.now();
  const folded = new Map<string, { state: MigrationState; lastSeq: number }>();
  // To the end of the stream as it is now, counted in messages: a last message the reader does not believe (not
  // an event, or not signed by whom it must be) ends the replay too, instead of leaving it waiting for more.
  for await (const { seq, event } of eventLog.follow({ fromSeq: 1, toEnd: true })) {
    const cur = folded.get(event.migrationId);
    folded.set(event.migrationId, { state: evolve(cur?.state ?? initialState(), event), lastSeq: seq });
    if (seq >= last) break;
  }
  const statuses = [...folded.values()].flatMap((f) => projectStatus(f.state, f.lastSeq) ?? []);
  return { seconds: (performance.now() - t0) / 1000, statuses };
}

import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { createEventLog, subjects, type Trust } from '@haul/bus';
import { evolve, initialState, projectStatus, type MigrationState } from '@haul/domain';
import type { MigrationStatus, Validators } from '@haul/schemas';
import { lastSeqOf } from './control-stream.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A migration id of the same length as the coordinator's (`m-` + 24 hex digits), for the k-th copy of `mid`. */
const copyId = (mid: string, k: number): string =>
  `m-${createHash('sha256').update(`${mid}#${k}`).digest('hex').slice(0, 24)}`;

/**
 * Fill the event stream up to `want` finished migrations: each finished log of the run appended again under new
 * migration ids (every occurrence of the id in the events is replaced, so commands, event ids and folders stay
 * consistent), in the original order per migration. Returns how many migrations the stream then holds.
 */
export async function cloneFinished(
  nc: NatsConnection,
  logs: ReadonlyMap<string, readonly Uint8Array[]>,
  want: number,
): Promise<number> {
  const js = jetstream(nc);
  const window: Promise<unknown>[] = [];
  let have = logs.size;
  for (let k = 1; have < want; k++) {
    for (const [mid, events] of logs) {
      if (have >= want) break;
      const id = copyId(mid, k);
      for (const data of events) {
        window.push(js.publish(subjects.events(id), enc.encode(dec.decode(data).replaceAll(mid, id))));
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
  for await (const { seq, event } of eventLog.follow({ fromSeq: 1 })) {
    const cur = folded.get(event.migrationId);
    folded.set(event.migrationId, { state: evolve(cur?.state ?? initialState(), event), lastSeq: seq });
    if (seq >= last) break;
  }
  const statuses = [...folded.values()].flatMap((f) => projectStatus(f.state, f.lastSeq) ?? []);
  return { seconds: (performance.now() - t0) / 1000, statuses };
}

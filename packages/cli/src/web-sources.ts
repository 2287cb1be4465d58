import type { NatsConnection } from '@nats-io/transport-node';
import { buckets, decodeJson, openBucket, watchProgress, type EventLog, type StoredEvent } from '@haul/bus';
import type { NodeHeartbeat } from '@haul/schemas';
import { envelopeValidators } from './envelope-validators.ts';
import type { WebModel } from './web-model.ts';

/** What `haul web` reads; all of it is what the `ops` role may read (packages/bus/src/permissions.ts). */
export type WebSources = {
  nc: NatsConnection;
  log: EventLog;
  /** The migrations that have not ended, asked of a coordinator (haul.api.list); undefined when none answers. */
  activeMigrations(): Promise<string[] | undefined>;
};

/**
 * Keep the model up to date until `signal` aborts: the event log followed from `since` (every migration with an
 * event since then), the migrations a coordinator lists as active however old, the progress bucket and the node
 * heartbeats. Resolves when every reader stopped; a reader that fails rejects it.
 */
export async function feedModel(
  src: WebSources,
  model: WebModel,
  since: Date,
  signal: AbortSignal,
  say: (s: string) => void,
): Promise<void> {
  const ingest = serialIngest(src.log, model);
  const active = src
    .activeMigrations()
    .then(async (ids) => {
      if (ids === undefined)
        say('haul web: no coordinator answers: only migrations with events since --since');
      for (const id of ids ?? []) await ingest.backfill(id);
    })
    .catch((err: unknown) => say(`haul web: active migrations not listed: ${(err as Error).message}`));
  await Promise.all([
    (async () => {
      for await (const s of src.log.follow({ since, signal })) await ingest.event(s);
    })(),
    (async () => {
      for await (const p of watchProgress(src.nc, envelopeValidators, undefined, signal))
        model.setTransfer(p);
    })(),
    watchNodes(src.nc, model, signal),
    active,
  ]);
}

/**
 * Events and backfills, one at a time: a migration first met in the middle of its log (it began before `since`, or
 * a coordinator listed it) is read whole before anything later of it is folded, so the fold is always in log order.
 */
export function serialIngest(log: EventLog, model: WebModel) {
  let chain: Promise<void> = Promise.resolve();
  // A failed step fails its caller, not every later one.
  const serial = (f: () => Promise<void> | void): Promise<void> => {
    const next = chain.then(f);
    chain = next.catch(() => {});
    return next;
  };
  const backfill = async (id: string) => {
    if (model.lastSeq(id) > 0) return;
    model.apply(id, (await log.read(id)).events);
  };
  return {
    event: (s: StoredEvent) =>
      serial(async () => {
        const id = s.event.migrationId;
        if (model.lastSeq(id) === 0 && s.event.type !== 'MigrationRequested') await backfill(id);
        model.apply(id, [s]);
      }),
    backfill: (id: string) => serial(() => backfill(id)),
  };
}

/** The node heartbeats (bucket haul-nodes) as they are written, the current ones first; a deleted key drops its node. */
async function watchNodes(nc: NatsConnection, model: WebModel, signal: AbortSignal): Promise<void> {
  const kv = await openBucket(nc, buckets.nodes);
  const iter = await kv.watch({ key: '>' });
  const stop = () => iter.stop();
  if (signal.aborted) stop();
  else signal.addEventListener('abort', stop, { once: true });
  try {
    for await (const e of iter) {
      if (e.operation !== 'PUT') {
        model.dropNode(e.key);
        continue;
      }
      const hb = heartbeatOf(e.value);
      if (hb) model.setNode(hb);
    }
  } finally {
    signal.removeEventListener('abort', stop);
    iter.stop();
  }
}

/** A heartbeat with the fields the page shows, or undefined (a stray value never breaks the page). */
export function heartbeatOf(bytes: Uint8Array): NodeHeartbeat | undefined {
  let v: unknown;
  try {
    v = decodeJson(bytes);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const hb = v as Record<string, unknown>;
  const ok =
    typeof hb['node'] === 'string' &&
    typeof hb['time'] === 'string' &&
    !Number.isNaN(Date.parse(hb['time'])) &&
    typeof hb['freeBytes'] === 'number' &&
    typeof hb['criuVersion'] === 'string';
  return ok ? (v as NodeHeartbeat) : undefined;
}

import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import type { TransferProgress, Validators } from '@haul/schemas';
import { buckets, progressKey, progressKeys } from './conventions.ts';
import { decodeValid, encodeJson, openBucket } from './kv.ts';
import { retryTransient } from './retry.ts';

/**
 * Transfer reports in the progress bucket (buckets.progress): the image streamer writes the latest report of each
 * running transfer, the coordinator reads the ones its stall rule needs, the CLI watches one migration's. None of
 * it is in the migration's log: a report never moves the sequence the log's compare-and-set writers expect.
 */
export const openProgress = (nc: NatsConnection): Promise<KV> => openBucket(nc, buckets.progress);

/** Write a transfer's latest report (it replaces the previous one: the bucket keeps one per transfer). */
export async function putProgress(kv: KV, report: TransferProgress): Promise<void> {
  await kv.put(progressKey(report.migrationId, report.node, report.commandId), encodeJson(report));
}

/** The transfer ended and its outcome is in the log: its report goes. */
export async function clearProgress(
  kv: KV,
  migrationId: string,
  node: string,
  commandId: string,
): Promise<void> {
  await kv.delete(progressKey(migrationId, node, commandId));
}

/**
 * The latest report of one transfer (sent by `node`), or undefined when there is none (never reported, ended,
 * expired) or what is there is not a report of that transfer: a stray value never counts as a sign of life.
 */
export async function readProgress(
  kv: KV,
  validators: Validators,
  migrationId: string,
  node: string,
  commandId: string,
): Promise<TransferProgress | undefined> {
  const e = await retryTransient(() => kv.get(progressKey(migrationId, node, commandId)));
  if (!e || e.operation !== 'PUT') return undefined;
  const d = decodeValid<TransferProgress>(validators, 'transferProgress', e.value);
  if (!d.ok || d.value.migrationId !== migrationId || d.value.commandId !== commandId) return undefined;
  return d.value;
}

/**
 * Every report of one migration's transfers (of every migration's when `migrationId` is undefined: the web view) as
 * it is written, the current ones first, until `signal` aborts.
 */
export async function* watchProgress(
  nc: NatsConnection,
  validators: Validators,
  migrationId: string | undefined,
  signal: AbortSignal,
): AsyncGenerator<TransferProgress> {
  const kv = await openProgress(nc);
  const key = migrationId === undefined ? '>' : progressKeys(migrationId);
  const iter = await kv.watch({ key, ignoreDeletes: true });
  const stop = () => iter.stop();
  if (signal.aborted) stop();
  else signal.addEventListener('abort', stop, { once: true });
  try {
    for await (const e of iter) {
      if (e.operation !== 'PUT') continue;
      const d = decodeValid<TransferProgress>(validators, 'transferProgress', e.value);
      if (d.ok && (migrationId === undefined || d.value.migrationId === migrationId)) yield d.value;
    }
  } finally {
    signal.removeEventListener('abort', stop);
    iter.stop();
  }
}

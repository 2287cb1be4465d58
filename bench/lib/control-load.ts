import type { NatsConnection } from '@nats-io/transport-node';
import { decodeJson, subjects } from '@haul/bus';
import { createApiClient, type RequestSigner } from '@haul/cli';
import type { MigrateReply, MigrateRequest, MigrationEvent } from '@haul/schemas';

export type LoadResult = {
  accepted: number;
  /** Refusals by error code (admission, validation); none expected. */
  refused: Record<string, number>;
  completed: number;
  rolledBack: number;
  /** Why the rolled-back ones rolled back (RollbackStarted's reason, migration ids left out), and how many each. */
  rollbackReasons: Record<string, number>;
  /** The steps that failed (StepFailed: `<step>: <error code>`), and how many times each. */
  stepFailures: Record<string, number>;
  /** From the first request sent to the last terminal event seen. */
  wallSeconds: number;
  /** Stopped waiting: no migration ended for the stall time, or the whole run took its timeout. */
  stalled: boolean;
};

/** How many requests are in flight at once (admission takes them one at a time anyway). */
const inFlight = 16;
const apiAttempts = 5;

/**
 * The i-th migration: its own CT, from node i mod N to another node (the offset walks through every other node),
 * live with pre-dump auto; every other one with a shared disk (the frozen window's ploop dance), all with a local
 * root disk (copyLocalDisk).
 */
export function requestOf(i: number, nodes: readonly string[]): MigrateRequest {
  const n = nodes.length;
  const ctid = String(100_000 + i);
  const offset = 1 + (Math.floor(i / n) % (n - 1));
  const req: MigrateRequest = {
    requestId: `bench-control-${i}`,
    ctid,
    source: nodes[i % n]!,
    target: nodes[(i + offset) % n]!,
  };
  if (i % 2 === 0) req.sharedDisks = [`/shared/ct${ctid}/DiskDescriptor.xml`];
  return req;
}

/** Ask for one migration; a request that timed out is asked again (the same request id is the same migration). */
async function migrate(api: ReturnType<typeof createApiClient>, req: MigrateRequest): Promise<MigrateReply> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await api.migrate(req);
    } catch (err) {
      if (attempt >= apiAttempts) throw err;
    }
  }
}

/**
 * Submit `count` migrations through the API and wait until each accepted one has its terminal event. Terminal
 * events are counted from a plain subscription to the event subjects (what the stream stores is also published).
 */
export async function runLoad(
  nc: NatsConnection,
  nodes: readonly string[],
  count: number,
  limit: { stallMs: number; timeoutMs: number },
  /** Signs each request as the scheduler (a secure coordinator refuses unsigned ones). */
  sign: RequestSigner,
): Promise<LoadResult> {
  const api = createApiClient(nc, sign);
  const ended = new Map<string, MigrationEvent['type']>();
  const rollbackReason = new Map<string, string>();
  const stepFailures: Record<string, number> = {};
  let lastEnd = Date.now();
  let wake: () => void = () => {};
  const sub = nc.subscribe(subjects.eventsAll, {
    callback: (_err, msg) => {
      const e = decodeJson(msg.data) as MigrationEvent;
      if (e.type === 'StepFailed') {
        const what = `${e.data.step}: ${e.data.error.code}`;
        stepFailures[what] = (stepFailures[what] ?? 0) + 1;
      }
      if (e.type === 'RollbackStarted' && !rollbackReason.has(e.migrationId))
        rollbackReason.set(e.migrationId, e.data.reason.replaceAll(/m-[0-9a-f]{24}/g, 'm-…'));
      if (e.type !== 'MigrationCompleted' && e.type !== 'MigrationRolledBack') return;
      ended.set(e.migrationId, e.type);
      lastEnd = Date.now();
      wake();
    },
  });
  const start = Date.now();
  const refused: Record<string, number> = {};
  const accepted = new Set<string>();
  let next = 0;
  const submitter = async () => {
    for (let i = next++; i < count; i = next++) {
      const r = await migrate(api, requestOf(i, nodes));
      if (r.ok) accepted.add(r.migrationId);
      else refused[r.error.code] = (refused[r.error.code] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, submitter));
  let stalled = false;
  while ([...accepted].some((m) => !ended.has(m))) {
    const left = Math.min(lastEnd + limit.stallMs, start + limit.timeoutMs) - Date.now();
    if (left <= 0) {
      stalled = true;
      break;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
  const wallSeconds = (lastEnd - start) / 1000;
  sub.unsubscribe();
  const types = [...accepted].map((m) => ended.get(m));
  const rollbackReasons: Record<string, number> = {};
  for (const m of accepted)
    if (ended.get(m) === 'MigrationRolledBack') {
      const why = rollbackReason.get(m) ?? '(no RollbackStarted seen)';
      rollbackReasons[why] = (rollbackReasons[why] ?? 0) + 1;
    }
  return {
    accepted: accepted.size,
    refused,
    completed: types.filter((t) => t === 'MigrationCompleted').length,
    rolledBack: types.filter((t) => t === 'MigrationRolledBack').length,
    rollbackReasons,
    stepFailures,
    wallSeconds,
    stalled,
  };
}

import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  buckets,
  createSlots,
  decodeValid,
  limits,
  migrationOfEventSubject,
  openBucket,
  readAgainUntil,
  retryTransient,
  streams,
  subjects,
  type EventLog,
  type Logger,
} from '@haul/bus';
import { fold, initialState, type MigrationState, errorCodes } from '@haul/domain';
import {
  isTerminalEvent,
  terminalEventTypes,
  type ErrorInfo,
  type MigrateRequest,
  type MigrationEvent,
  type NodeHeartbeat,
  type Validators,
} from '@haul/schemas';
import { createLedger, type AdmissionEntry } from './admission-ledger.ts';

export type { AdmissionEntry } from './admission-ledger.ts';

/**
 * The migration id of a request: a hash of the request id, so one request id is one migration, found again by any
 * coordinator after any crash. 96 bits; a collision is still detected (the log and the ledger keep the request id)
 * and refused, never answered with another request's migration.
 */
export function migrationIdFor(requestId: string): string {
  return `m-${createHash('sha256').update(requestId, 'utf8').digest('hex').slice(0, 24)}`;
}

/** What the nodes bucket says about a node: its heartbeat, or why there is none to use. */
export type NodeReport = { ok: true; heartbeat: NodeHeartbeat } | { ok: false; reason: string };

export type AdmissionInput = {
  request: MigrateRequest;
  migrationId: string;
  nodes: { source: NodeReport; target: NodeReport };
  maxPerNode: number;
  now: Date;
};

export type AdmissionDecision =
  { ok: true; entry: AdmissionEntry; entries: AdmissionEntry[] } | { ok: false; error: ErrorInfo };

const roles = ['source', 'target'] as const;

/** The refusal of a request id whose migration id is another request id's. */
export const collision = (migrationId: string): ErrorInfo => ({
  code: errorCodes.requestIdCollision,
  message: `migration id ${migrationId} is taken by another request id (hash collision); use another request id`,
  field: 'requestId',
});

/**
 * Admit a request against the active migrations, or say why not. Pure. The precedence is fixed (docs/api.md):
 * the request's own earlier admission (completed, not checked again), then the CT busy, then each node (source
 * first) unknown or down, then each node (source first) at its limit.
 */
export function decideAdmission(entries: readonly AdmissionEntry[], a: AdmissionInput): AdmissionDecision {
  const { request: req, migrationId } = a;
  const admittedAt = a.now.toISOString();
  const own = entries.find((e) => e.migrationId === migrationId);
  if (own) {
    if (own.requestId !== req.requestId) return { ok: false, error: collision(migrationId) };
    const other = reusedFor(own, req);
    if (other) return { ok: false, error: other };
    const entry = { ...own, admittedAt };
    return { ok: true, entry, entries: entries.map((e) => (e === own ? entry : e)) };
  }
  const busy = ctBusy(entries, req.ctid);
  if (busy) return { ok: false, error: busy };
  const live = liveImageRoots(a);
  if (!live.ok) return live;
  const full = nodeAtLimit(entries, req, a.maxPerNode);
  if (full) return { ok: false, error: full };
  const entry: AdmissionEntry = {
    migrationId,
    requestId: req.requestId,
    ctid: req.ctid,
    source: req.source,
    target: req.target,
    imageRoots: live.roots,
    admittedAt,
  };
  return { ok: true, entry, entries: [...entries, entry] };
}

/**
 * The request id's admission is of another request (another CT or other nodes) whose MigrationRequested is not in the
 * log yet: the refusal, else undefined. Taken as its own, the log would hold this request's CT under the ledger's
 * entry for the other one: this CT and its nodes never counted, the other CT held for the migration's life.
 */
function reusedFor(own: AdmissionEntry, req: MigrateRequest): ErrorInfo | undefined {
  const differs = (['ctid', 'source', 'target'] as const).find((f) => own[f] !== req[f]);
  return differs
    ? {
        code: errorCodes.requestIdReused,
        message: `request id ${req.requestId} is admitted for CT ${own.ctid} from ${own.source} to ${own.target}; one request id is one migration: use another id`,
        field: differs,
      }
    : undefined;
}

/** Another admitted migration has this CT: the refusal, else undefined. */
function ctBusy(entries: readonly AdmissionEntry[], ctid: string): ErrorInfo | undefined {
  const holder = entries.find((e) => e.ctid === ctid);
  return holder
    ? {
        code: errorCodes.ctBusy,
        message: `CT ${ctid} is already migrating (${holder.migrationId})`,
        field: 'ctid',
      }
    : undefined;
}

/** The source, else the target, already takes part in maxPerNode admitted migrations: the refusal. */
function nodeAtLimit(
  entries: readonly AdmissionEntry[],
  nodes: { source: string; target: string },
  maxPerNode: number,
): ErrorInfo | undefined {
  for (const role of roles) {
    const node = nodes[role];
    const taking = entries.filter((e) => e.source === node || e.target === node).length;
    if (taking >= maxPerNode)
      return {
        code: errorCodes.nodeBusy,
        message: `${node} already takes part in ${taking} migrations (limit ${maxPerNode})`,
        field: role,
      };
  }
  return undefined;
}

/** Whether a migration may take its first step, and the ledger to write first (none: unchanged). */
export type Confirmation = { ok: true; entries?: AdmissionEntry[] } | { ok: false; error: ErrorInfo };

/**
 * A migration is in the log and about to take its first step: may it? Pure. Its entry is in the ledger: yes; an
 * entry old enough that a reaper may have judged it stale just before the MigrationRequested landed is refreshed
 * (the reaper keeps an entry refreshed meanwhile). Its entry was reaped (the append took longer than the grace
 * period): it is admitted again, against the CT and node limits as they are now, or refused — then the migration
 * must be cancelled before any step, since its CT or a node went to another migration meanwhile.
 */
export function decideConfirmation(
  entries: readonly AdmissionEntry[],
  wanted: AdmissionEntry,
  a: { maxPerNode: number; now: Date },
): Confirmation {
  const admittedAt = a.now.toISOString();
  const own = entries.find((e) => e.migrationId === wanted.migrationId);
  if (own) {
    if (a.now.getTime() - Date.parse(own.admittedAt) < limits.admissionGraceMs / 2) return { ok: true };
    return { ok: true, entries: entries.map((e) => (e === own ? { ...own, admittedAt } : e)) };
  }
  const refusal = ctBusy(entries, wanted.ctid) ?? nodeAtLimit(entries, wanted, a.maxPerNode);
  if (refusal) return { ok: false, error: refusal };
  return { ok: true, entries: [...entries, { ...wanted, admittedAt }] };
}

/** Nothing of the migration has happened on a host yet: no step intended, no cancel, no rollback, no end. */
export const beforeFirstStep = (s: MigrationState): boolean =>
  !!s.migrationId &&
  !s.terminal &&
  !s.rollback &&
  s.cancelRequested === undefined &&
  Object.keys(s.steps).length === 0;

/** Both nodes reported recently: their image roots; else the first (source, then target) that did not. */
function liveImageRoots(
  a: AdmissionInput,
): { ok: true; roots: { source: string; target: string } } | { ok: false; error: ErrorInfo } {
  const roots = { source: '', target: '' };
  for (const role of roles) {
    const report = a.nodes[role];
    if (!report.ok)
      return { ok: false, error: { code: errorCodes.nodeUnknown, message: report.reason, field: role } };
    const hb = report.heartbeat;
    if (a.now.getTime() - Date.parse(hb.time) > limits.nodeStaleMs)
      return {
        ok: false,
        error: {
          code: errorCodes.nodeDown,
          message: `${a.request[role]} last reported at ${hb.time}`,
          field: role,
        },
      };
    roots[role] = hb.imageRoot;
  }
  return { ok: true, roots };
}

/** The ledger entry a migration's state stands for, or undefined when it is no unfinished migration. */
function activeEntryOf(state: MigrationState): AdmissionEntry | undefined {
  const { migrationId, request: r, imageRoots, requestedAt } = state;
  if (state.terminal || !migrationId || !r || !imageRoots || requestedAt === undefined) return undefined;
  return {
    migrationId,
    requestId: r.requestId,
    ctid: r.ctid,
    source: r.source,
    target: r.target,
    imageRoots,
    admittedAt: requestedAt,
  };
}

/**
 * Admission: the ledger of active migrations (CT, source, target), changed only under compare-and-set, reconciled
 * with the log. The log stays the truth: a missing or unreadable ledger is rebuilt from it, an entry whose log
 * ended is released, and an entry whose MigrationRequested never came (a crash between admission and the append)
 * is reaped after limits.admissionGraceMs.
 */
export function createAdmission(deps: {
  nc: NatsConnection;
  validators: Validators;
  eventLog: EventLog;
  log: Logger;
  maxPerNode: number;
}) {
  const { nc, validators, eventLog, log } = deps;
  const ledger = createLedger(nc, log);

  async function nodeReport(node: string): Promise<NodeReport> {
    const kv = await openBucket(nc, buckets.nodes);
    const e = await retryTransient(() => kv.get(node));
    if (!e || e.operation !== 'PUT') return { ok: false, reason: `no node agent has reported for ${node}` };
    const d = decodeValid<NodeHeartbeat>(validators, 'nodeHeartbeat', e.value);
    if (d.ok) return { ok: true, heartbeat: d.value };
    log.warn({ nodeId: node, reason: d.reason }, 'unreadable heartbeat in the nodes bucket');
    return { ok: false, reason: `the heartbeat of ${node} is unreadable (${d.reason})` };
  }

  /** Every unfinished migration in the log (for a missing or unreadable ledger). */
  async function activeInLog(): Promise<AdmissionEntry[]> {
    const jsm = await retryTransient(() => jetstreamManager(nc));
    const info = await retryTransient(() =>
      jsm.streams.info(streams.events, { subjects_filter: subjects.eventsAll }),
    );
    const out: AdmissionEntry[] = [];
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const migrationId = migrationOfEventSubject(subject);
      if (!migrationId) continue;
      const last = await retryTransient(() =>
        jsm.streams.getMessage(streams.events, { last_by_subj: subject }),
      );
      const lastType = last ? decodeValid<MigrationEvent>(validators, 'event', last.data) : undefined;
      if (lastType?.ok && isTerminalEvent(lastType.value)) continue;
      const { events } = await eventLog.read(migrationId);
      const entry = activeEntryOf(
        fold(
          events.map((e) => e.event),
          initialState(),
        ),
      );
      if (entry) out.push(entry);
    }
    return out;
  }
  const rebuild = { rebuild: activeInLog };

  /**
   * Per admitted migration, the stream sequence up to which its log was seen to hold no ending: the next reap reads
   * only what came after (a message get when nothing did), not every admitted migration's whole log every time.
   */
  const notEndedUpTo = new Map<string, number>();

  /** Is this entry's migration over, or never started within the grace period? Then its reason. */
  async function staleReason(e: AdmissionEntry, now: number): Promise<string | undefined> {
    const afterSeq = notEndedUpTo.get(e.migrationId) ?? 0;
    // Only the coordinator writes an ending, so only its events after the last look are read and checked.
    const read = () => eventLog.readCoordinatorEvents(e.migrationId, afterSeq, terminalEventTypes);
    // lastSeq is the subject's last message as stored, readable or not: only a subject with no message at all is a
    // request that never got its MigrationRequested appended. Past the grace period, an empty subject is read again
    // before the CT is freed: a stream leader of nats-server before 2.11 answers before it has applied what it took
    // over (readAgainUntil), and every migration older than the grace period would read as never requested.
    const pastGrace = now - Date.parse(e.admittedAt) > limits.admissionGraceMs;
    const { events, lastSeq } = (await readAgainUntil(read, (r) => !pastGrace || r.lastSeq > 0))!.read;
    if (lastSeq === 0) return pastGrace ? 'no MigrationRequested within the grace period' : undefined;
    // Only an ending seen in the log frees the CT: a log whose first events are unreadable or gone (retention, an
    // older schema) still holds its admission.
    if (events.some((x) => isTerminalEvent(x.event))) return 'its migration has ended';
    notEndedUpTo.set(e.migrationId, lastSeq);
    return undefined;
  }

  return {
    /**
     * What admission would answer now, changing nothing (haul.api.check): the ledger as it is read (a missing one
     * reads as empty, not rebuilt) and the nodes' heartbeats.
     */
    async judge(request: MigrateRequest, migrationId: string): Promise<AdmissionDecision> {
      const nodes = {
        source: await nodeReport(request.source),
        target: await nodeReport(request.target),
      };
      const entries = await ledger.read();
      return decideAdmission(entries, {
        request,
        migrationId,
        nodes,
        maxPerNode: deps.maxPerNode,
        now: new Date(),
      });
    },

    /** Admit `request` as `migrationId` (or find its own earlier admission), under compare-and-set. */
    async admit(request: MigrateRequest, migrationId: string): Promise<AdmissionDecision> {
      const nodes = {
        source: await nodeReport(request.source),
        target: await nodeReport(request.target),
      };
      return ledger.change<AdmissionDecision>((entries) => {
        const d = decideAdmission(entries, {
          request,
          migrationId,
          nodes,
          maxPerNode: deps.maxPerNode,
          now: new Date(),
        });
        return d.ok ? { entries: d.entries, result: d } : { result: d };
      }, rebuild);
    },

    /**
     * Before a migration's first step (the process manager asks at every decision until then; later it is a no-op):
     * undefined when it is admitted — its entry in the ledger, put back if the reaper took it, refreshed if the
     * reaper may be about to — else why it must be cancelled. The ledger is the one place this is decided, under
     * compare-and-set with admissions and the reaper, so a CT admitted again meanwhile never has two migrations
     * taking steps.
     */
    async confirm(state: MigrationState): Promise<ErrorInfo | undefined> {
      if (!beforeFirstStep(state)) return undefined;
      const wanted = activeEntryOf(state);
      if (!wanted) return undefined;
      const confirmed = await ledger.change<{ error: ErrorInfo } | { readmitted: boolean }>((entries) => {
        const d = decideConfirmation(entries, wanted, { maxPerNode: deps.maxPerNode, now: new Date() });
        if (!d.ok) return { result: { error: d.error } };
        const readmitted = !entries.some((e) => e.migrationId === wanted.migrationId);
        return d.entries ? { entries: d.entries, result: { readmitted } } : { result: { readmitted } };
      }, rebuild);
      if ('error' in confirmed) {
        log.error(
          { migrationId: wanted.migrationId, err: confirmed.error },
          'admission was reaped before its append and cannot be taken again',
        );
        return confirmed.error;
      }
      if (confirmed.readmitted)
        log.warn(
          { migrationId: wanted.migrationId },
          'admission was reaped before its append: admitted again',
        );
      return undefined;
    },

    /** Every admitted, unfinished migration (a missing or unreadable ledger is rebuilt from the log first). */
    entries(): Promise<AdmissionEntry[]> {
      return ledger.change((entries) => ({ result: [...entries] }), rebuild);
    },

    release: (migrationId: string): Promise<boolean> => releaseAdmission(nc, log, migrationId),

    /** Reconcile the ledger with the log: drop ended migrations and admissions never appended. Returns their ids. */
    async reap(): Promise<string[]> {
      const now = Date.now();
      const stale = new Map<string, { admittedAt: string; reason: string }>();
      const admitted = await ledger.read();
      // Side by side, a bounded number at once: one after the other, a thousand admissions cost a thousand round
      // trips, and each empty log past its grace period held every entry after it for its reads again (3.75 s).
      const slots = createSlots(limits.reapReadsAtOnce);
      await Promise.all(
        admitted.map(async (e) => {
          const release = await slots.acquire();
          try {
            const reason = await staleReason(e, now);
            if (reason) stale.set(e.migrationId, { admittedAt: e.admittedAt, reason });
          } finally {
            release();
          }
        }),
      );
      const still = new Set(admitted.filter((e) => !stale.has(e.migrationId)).map((e) => e.migrationId));
      for (const mid of notEndedUpTo.keys()) if (!still.has(mid)) notEndedUpTo.delete(mid);
      if (stale.size === 0) return [];
      // An entry refreshed meanwhile (a retry of its request completing it) is kept.
      const gone = (e: AdmissionEntry) => stale.get(e.migrationId)?.admittedAt === e.admittedAt;
      const reaped = await ledger.change((entries) => {
        const found = entries.filter(gone);
        return found.length ? { entries: entries.filter((e) => !gone(e)), result: found } : { result: [] };
      });
      for (const e of reaped)
        log.warn(
          { migrationId: e.migrationId, ctid: e.ctid, reason: stale.get(e.migrationId)!.reason },
          'admission released',
        );
      return reaped.map((e) => e.migrationId);
    },
  };
}

export type Admission = ReturnType<typeof createAdmission>;

/**
 * A migration is over: free its CT and nodes (the process manager calls this at the terminal event). A missing or
 * unreadable ledger has nothing to free: its rebuild reads the log, where the migration has ended.
 */
export function releaseAdmission(nc: NatsConnection, log: Logger, migrationId: string): Promise<boolean> {
  return createLedger(nc, log).change((entries) =>
    entries.some((e) => e.migrationId === migrationId)
      ? { entries: entries.filter((e) => e.migrationId !== migrationId), result: true }
      : { result: false },
  );
}

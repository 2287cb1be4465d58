import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  buckets,
  decodeValid,
  limits,
  openBucket,
  retryTransient,
  streams,
  subjects,
  type EventLog,
  type Logger,
} from '@haul/bus';
import { fold, initialState } from '@haul/domain';
import {
  isTerminalEvent,
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

/** The error codes admission decides, defined once (docs/api.md lists them, in this order of precedence). */
export const admissionCodes = {
  /** The request id hashes to the migration id of another request id (never seen; refused, not merged). */
  requestIdCollision: 'HAUL_REQUEST_ID_COLLISION',
  ctBusy: 'HAUL_CT_BUSY',
  nodeUnknown: 'HAUL_NODE_UNKNOWN',
  nodeDown: 'HAUL_NODE_DOWN',
  nodeBusy: 'HAUL_NODE_BUSY',
} as const;

const roles = ['source', 'target'] as const;

/** The refusal of a request id whose migration id is another request id's. */
export const collision = (migrationId: string): ErrorInfo => ({
  code: admissionCodes.requestIdCollision,
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
    const entry = { ...own, admittedAt };
    return { ok: true, entry, entries: entries.map((e) => (e === own ? entry : e)) };
  }
  const holder = entries.find((e) => e.ctid === req.ctid);
  if (holder)
    return {
      ok: false,
      error: {
        code: admissionCodes.ctBusy,
        message: `CT ${req.ctid} is already migrating (${holder.migrationId})`,
        field: 'ctid',
      },
    };
  const live = liveImageRoots(a);
  if (!live.ok) return live;
  for (const role of roles) {
    const node = req[role];
    const taking = entries.filter((e) => e.source === node || e.target === node).length;
    if (taking >= a.maxPerNode)
      return {
        ok: false,
        error: {
          code: admissionCodes.nodeBusy,
          message: `${node} already takes part in ${taking} migrations (limit ${a.maxPerNode})`,
          field: role,
        },
      };
  }
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

/** Both nodes reported recently: their image roots; else the first (source, then target) that did not. */
function liveImageRoots(
  a: AdmissionInput,
): { ok: true; roots: { source: string; target: string } } | { ok: false; error: ErrorInfo } {
  const roots = { source: '', target: '' };
  for (const role of roles) {
    const report = a.nodes[role];
    if (!report.ok)
      return { ok: false, error: { code: admissionCodes.nodeUnknown, message: report.reason, field: role } };
    const hb = report.heartbeat;
    if (a.now.getTime() - Date.parse(hb.time) > limits.nodeStaleMs)
      return {
        ok: false,
        error: {
          code: admissionCodes.nodeDown,
          message: `${a.request[role]} last reported at ${hb.time}`,
          field: role,
        },
      };
    roots[role] = hb.imageRoot;
  }
  return { ok: true, roots };
}

/** The ledger entry a migration's log stands for, or undefined when the log holds no unfinished migration. */
function activeEntryOf(events: MigrationEvent[]): AdmissionEntry | undefined {
  const state = fold(events, initialState());
  const requested = events.find((e) => e.type === 'MigrationRequested');
  if (state.terminal || !state.migrationId || requested?.type !== 'MigrationRequested') return undefined;
  const r = requested.data.request;
  return {
    migrationId: state.migrationId,
    requestId: r.requestId,
    ctid: r.ctid,
    source: r.source,
    target: r.target,
    imageRoots: requested.data.imageRoots,
    admittedAt: requested.time,
  };
}

/** The migration whose log a subject of the event stream is; undefined for a subject no migration has. */
function migrationOfSubject(subject: string): string | undefined {
  const migrationId = subject.slice(subjects.eventsAll.length - 1);
  try {
    return subjects.events(migrationId) === subject ? migrationId : undefined;
  } catch {
    return undefined; // not a subject token, e.g. haul.events.a.b
  }
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
      const migrationId = migrationOfSubject(subject);
      if (!migrationId) continue;
      const last = await retryTransient(() =>
        jsm.streams.getMessage(streams.events, { last_by_subj: subject }),
      );
      const lastType = last ? decodeValid<MigrationEvent>(validators, 'event', last.data) : undefined;
      if (lastType?.ok && isTerminalEvent(lastType.value)) continue;
      const { events } = await eventLog.read(migrationId);
      const entry = activeEntryOf(events.map((e) => e.event));
      if (entry) out.push(entry);
    }
    return out;
  }
  const rebuild = { rebuild: activeInLog };

  /** Is this entry's migration over, or never started within the grace period? Then its reason. */
  async function staleReason(e: AdmissionEntry, now: number): Promise<string | undefined> {
    const { events, lastSeq } = await eventLog.read(e.migrationId);
    // lastSeq is the subject's last message as stored, readable or not: only a subject with no message at all is a
    // request that never got its MigrationRequested appended.
    if (lastSeq === 0)
      return now - Date.parse(e.admittedAt) > limits.admissionGraceMs
        ? 'no MigrationRequested within the grace period'
        : undefined;
    // Only an ending seen in the log frees the CT: a log whose first events are unreadable or gone (retention, an
    // older schema) still holds its admission.
    return events.some((x) => isTerminalEvent(x.event)) ? 'its migration has ended' : undefined;
  }

  return {
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
     * After the append: put the entry back if the reaper took it meanwhile (only possible when this admission
     * took longer than the grace period; the log now says the migration exists).
     */
    async confirm(entry: AdmissionEntry): Promise<void> {
      if (Date.now() - Date.parse(entry.admittedAt) < limits.admissionGraceMs / 2) return;
      await ledger.change((entries) => {
        if (entries.some((e) => e.migrationId === entry.migrationId)) return { result: undefined };
        log.warn({ migrationId: entry.migrationId }, 'admission was reaped before its append: restored');
        return { entries: [...entries, entry], result: undefined };
      }, rebuild);
    },

    release: (migrationId: string): Promise<boolean> => releaseAdmission(nc, log, migrationId),

    /** Reconcile the ledger with the log: drop ended migrations and admissions never appended. Returns their ids. */
    async reap(): Promise<string[]> {
      const now = Date.now();
      const stale = new Map<string, { admittedAt: string; reason: string }>();
      for (const e of await ledger.read()) {
        const reason = await staleReason(e, now);
        if (reason) stale.set(e.migrationId, { admittedAt: e.admittedAt, reason });
      }
      if (stale.size === 0) return [];
      // An entry refreshed meanwhile (a retry of its request completing it) is kept.
      const gone = (e: AdmissionEntry) => stale.get(e.migrationId)?.admittedAt === e.admittedAt;
      return ledger.change((entries) => {
        const reaped = entries.filter(gone);
        for (const e of reaped)
          log.warn(
            { migrationId: e.migrationId, ctid: e.ctid, reason: stale.get(e.migrationId)!.reason },
            'admission released',
          );
        return reaped.length
          ? { entries: entries.filter((e) => !gone(e)), result: reaped.map((e) => e.migrationId) }
          : { result: [] };
      });
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

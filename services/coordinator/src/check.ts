import type { NatsConnection } from '@nats-io/transport-node';
import {
  buckets,
  decodeJson,
  encodeJson,
  limits,
  openBucket,
  signedRequest,
  subjects,
  validValues,
  type Logger,
  type Trust,
} from '@haul/bus';
import {
  checkMigration,
  errorCodes,
  lastMeasuredConvergence,
  type Findings,
  type MigrationState,
  withRequestDefaults,
} from '@haul/domain';
import {
  wireError,
  type CheckReply,
  type ErrorInfo,
  type InspectReply,
  type MigrateRequest,
  type MigrationStatus,
  type Validators,
} from '@haul/schemas';
import { migrationIdFor, type Admission } from './admission.ts';
import type { ProcessManager } from './process-manager.ts';

export type CheckDeps = {
  nc: NatsConnection;
  validators: Validators;
  pm: ProcessManager;
  admission: Admission;
  trust: Trust;
  log: Logger;
  /** The core's refusals of the request itself (same node, a budget in restart mode), as migrate answers them. */
  refused: (req: MigrateRequest, migrationId: string) => ErrorInfo | undefined;
};

/** Completed live migrations read for what they measured, newest first: the CT's and the two nodes'. */
const historyDepth = 5;
const recentDepth = 5;

/** A migration that measured something of these nodes: from the source, to the target, or between the two. */
const touches = (s: MigrationStatus, req: MigrateRequest) =>
  s.source === req.source || s.target === req.target || (s.source === req.target && s.target === req.source);

/**
 * haul.api.check (haul migrate --check): would this migration work now, what would it copy, how long would the CT
 * be frozen? A request outside any migration, never a migration that stops after its preflight: nothing is admitted
 * (no CT or node slot is taken), nothing is appended to the log, no command is sent. What admission would answer is
 * judged on the ledger as read; each node agent is asked what it sees of the CT (haul.inspect.<node>, signed by this
 * coordinator), which reads the host and changes nothing; earlier migrations' logs are read for what they measured
 * (the CT's dirty rate; the dump, link and restore speeds of these nodes); the verdict and the predicted downtime are
 * the core's (checkMigration).
 */
export function createCheck(deps: CheckDeps) {
  const { nc, validators, pm, admission, trust, log } = deps;

  /** What a node's agent sees of the CT, or why it could not be asked. */
  async function inspect(
    role: 'source' | 'target',
    node: string,
    ctid: string,
  ): Promise<{ ok: true; found: Findings } | { ok: false; error: ErrorInfo }> {
    const subject = subjects.inspect(node);
    const body = encodeJson({ ctid });
    try {
      const m = await signedRequest(nc, subject, body, trust.sign(subject, body), limits.inspectTimeoutMs);
      const v = validators.validate<InspectReply>('inspectReply', decodeJson(m.data));
      if (!v.ok) throw new Error(`the agent's reply breaks its schema: ${v.error.message}`);
      return v.value.ok ? { ok: true, found: v.value.inspection } : { ok: false, error: v.value.error };
    } catch (err) {
      log.warn({ nodeId: node, err }, 'inspection unanswered');
      return {
        ok: false,
        error: {
          code: errorCodes.nodeNoAnswer,
          message: `the agent of ${node} did not answer the inspection of CT ${ctid}: ${(err as Error).message}`,
          field: role,
        },
      };
    }
  }

  /**
   * What earlier migrations measured: the CT's latest completed live migration whose log measured a dirty rate (two
   * pre-dumps), if any, and the latest completed live migrations of any CT that touched these nodes (speeds).
   */
  async function earlier(
    req: MigrateRequest,
  ): Promise<{ history?: MigrationState; recent: MigrationState[] }> {
    const kv = await openBucket(nc, buckets.status);
    const ct: MigrationStatus[] = [];
    const nodes: MigrationStatus[] = [];
    const junk = (key: string, reason: string) =>
      log.warn({ bucket: buckets.status, key, reason }, 'unreadable status skipped');
    for await (const { value: s } of validValues<MigrationStatus>(kv, validators, 'migrationStatus', junk)) {
      if (s.phase !== 'completed' || s.mode !== 'live') continue;
      if (s.ctid === req.ctid) ct.push(s);
      if (touches(s, req)) nodes.push(s);
    }
    const newestFirst = (a: MigrationStatus, b: MigrationStatus) => b.updatedAt.localeCompare(a.updatedAt);
    const load = async (s: MigrationStatus) => (await pm.load(s.migrationId)).state;
    /** The newest of the CT's migrations that measured its dirty rate. */
    const measuredCt = async () => {
      for (const s of ct.sort(newestFirst).slice(0, historyDepth)) {
        const state = await load(s);
        if (lastMeasuredConvergence(state)) return state;
      }
      return undefined;
    };
    const [history, recent] = await Promise.all([
      measuredCt(),
      Promise.all(nodes.sort(newestFirst).slice(0, recentDepth).map(load)),
    ]);
    return history ? { history, recent } : { recent };
  }

  return async function check(raw: unknown): Promise<CheckReply> {
    const v = validators.validate<MigrateRequest>('migrateRequest', raw);
    if (!v.ok) return { ok: false, error: wireError(v.error) };
    const req = v.value;
    const migrationId = migrationIdFor(req.requestId);
    const bad = deps.refused(req, migrationId);
    if (bad) return { ok: false, error: bad };
    const [judged, src, tgt, past] = await Promise.all([
      admission.judge(req, migrationId),
      inspect('source', req.source, req.ctid),
      inspect('target', req.target, req.ctid),
      earlier(req),
    ]);
    const unanswered = !src.ok ? src.error : !tgt.ok ? tgt.error : undefined;
    return checkMigration({
      request: withRequestDefaults(req),
      admission: judged.ok ? undefined : judged.error,
      source: src.ok ? src.found : undefined,
      target: tgt.ok ? tgt.found : undefined,
      inspection: unanswered,
      history: past.history,
      recent: past.recent,
    });
  };
}

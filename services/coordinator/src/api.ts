import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node';
import {
  ConcurrencyConflictError,
  buckets,
  decodeJson,
  encodeJson,
  openBucket,
  readAgainUntil,
  sentTo,
  serveDiscovery,
  subjects,
  validValues,
  type EventLog,
  type Logger,
  type Trust,
} from '@haul/bus';
import {
  CommandRejectedError,
  askedBy,
  decide,
  deriveStatsOf,
  initialState,
  projectStatus,
  type MigrationState,
  errorCodes,
} from '@haul/domain';
import {
  wireError,
  type CancelRequest,
  type ErrorInfo,
  type ListRequest,
  type MigrateReply,
  type MigrateRequest,
  type MigrationStatus,
  type StatusReply,
  type StatusRequest,
  type ValidationError,
  type Validators,
} from '@haul/schemas';
import { collision, migrationIdFor, type Admission, type AdmissionEntry } from './admission.ts';
import { createCheck } from './check.ts';
import { operatorRoutes } from './operator-api.ts';
import { createSignerOf } from './signer.ts';
import type { ProcessManager } from './process-manager.ts';

const reject = (error: ErrorInfo): MigrateReply => ({ ok: false, error });

/**
 * The scheduler API on NATS request/reply (docs/api.md): migrate, cancel, status, list. Every request is
 * validated against its schema; a rejection names the code and the failing field.
 */
export function createApi(
  nc: NatsConnection,
  validators: Validators,
  eventLog: EventLog,
  pm: ProcessManager,
  log: Logger,
  admission: Admission,
  trust: Trust,
) {
  const signerOf = createSignerOf(trust);
  const rejection = (err: CommandRejectedError): ErrorInfo =>
    err.field
      ? { code: err.code, message: err.message, field: err.field }
      : { code: err.code, message: err.message };

  /** The reply to a request whose migration the log already has (a duplicate); undefined when it has none. */
  function duplicateOf(
    req: MigrateRequest,
    migrationId: string,
    state: MigrationState,
  ): MigrateReply | undefined {
    if (!state.migrationId) return undefined;
    if (state.request?.requestId !== req.requestId) return reject(collision(migrationId));
    return { ok: true, migrationId, duplicate: true };
  }

  /** What the core refuses in the request itself (same node, a budget in restart mode), before admission. */
  function refused(req: MigrateRequest, migrationId: string): ErrorInfo | undefined {
    const probe = { source: '/', target: '/' };
    try {
      decide(
        { kind: 'RequestMigration', migrationId, request: req, imageRoots: probe, meta: pm.meta() },
        initialState(),
      );
      return undefined;
    } catch (err) {
      if (err instanceof CommandRejectedError) return rejection(err);
      throw err;
    }
  }

  /**
   * Append MigrationRequested as the first event of the migration's subject (compare-and-set on an empty subject,
   * deduplicated by its event id, itself derived from the request id): of concurrent identical requests exactly
   * one appends; the others find its migration in the log.
   */
  async function appendRequested(
    req: MigrateRequest,
    entry: AdmissionEntry,
    requestedBy: string | undefined,
  ): Promise<MigrateReply> {
    const { migrationId, imageRoots } = entry;
    const by = askedBy(requestedBy);
    const [requested] = decide(
      { kind: 'RequestMigration', migrationId, request: req, imageRoots, ...by, meta: pm.meta() },
      initialState(),
    );
    let duplicate: boolean;
    try {
      duplicate = (await eventLog.append(requested!, { expectedLastSeq: 0 })).duplicate;
    } catch (err) {
      if (!(err instanceof ConcurrencyConflictError)) throw err;
      duplicate = true;
    }
    if (duplicate) {
      // Another request with this id appended first. If its migration has even ended already, the admission
      // taken here meanwhile is freed at once (else the reaper would, later). A read that does not show it yet (a
      // stream leader behind what it took over: readAgainUntil) is made again before the answer says so.
      const loaded = await readAgainUntil(
        () => pm.load(migrationId),
        (l) => l.state.migrationId !== undefined,
      );
      const { state } = loaded!.read; // no signal: it ends with a read
      if (state.terminal) await admission.release(migrationId);
      return (
        duplicateOf(req, migrationId, state) ??
        reject({
          code: errorCodes.internal,
          message: `${migrationId}: refused by the log, not in it`,
          retryable: true,
        })
      );
    }
    // An admission the reaper took meanwhile (an append slower than its grace period) is settled by the process
    // manager before the migration's first step: admitted again, or cancelled (admission.confirm).
    log.info(
      { migrationId, ctid: req.ctid, source: req.source, target: req.target, ...by },
      'migration accepted',
    );
    return { ok: true, migrationId, duplicate: false };
  }

  /**
   * One request id is one migration (its id is derived from the request id). Precedence: the schema, a duplicate
   * (answered with the migration in the log), the core's refusals, then admission (docs/api.md).
   */
  async function migrate(raw: unknown, msg: Msg): Promise<MigrateReply> {
    const v = validators.validate<MigrateRequest>('migrateRequest', raw);
    if (!v.ok) return reject(wireError(v.error));
    const who = signerOf(msg);
    if (!who.ok) return reject(who.error);
    const req = v.value;
    const migrationId = migrationIdFor(req.requestId);
    const known = duplicateOf(req, migrationId, (await pm.load(migrationId)).state);
    if (known) return known;
    const bad = refused(req, migrationId);
    if (bad) return reject(bad);
    const admitted = await admission.admit(req, migrationId);
    if (!admitted.ok) return reject(admitted.error);
    return appendRequested(req, admitted.entry, who.name);
  }

  async function status(mid: string): Promise<MigrationStatus | undefined> {
    const { state, lastSeq } = await pm.load(mid);
    const st = projectStatus(state, lastSeq);
    if (st && !state.terminal) st.stats = deriveStatsOf(state, new Date().toISOString());
    return st;
  }

  async function cancel(raw: unknown, msg: Msg): Promise<StatusReply> {
    const v = validators.validate<CancelRequest>('cancelRequest', raw);
    if (!v.ok) return reject(wireError(v.error));
    const who = signerOf(msg);
    if (!who.ok) return reject(who.error);
    const mid = v.value.migrationId;
    try {
      // decide itself refuses a cancel that comes too late (or for an unknown or finished migration), with a code.
      await pm.step(mid, () => ({
        kind: 'Cancel',
        reason: v.value.reason ?? 'cancelled by an operator',
        ...askedBy(who.name),
        meta: pm.meta(),
      }));
    } catch (err) {
      if (err instanceof CommandRejectedError)
        return {
          ok: false,
          error: { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) },
        };
      throw err;
    }
    await pm.step(mid);
    const st = await status(mid);
    return st
      ? { ok: true, status: st }
      : {
          ok: false,
          error: { code: errorCodes.unknownMigration, message: 'no such migration', field: 'migrationId' },
        };
  }

  async function statusReq(raw: unknown): Promise<StatusReply> {
    const v = validators.validate<StatusRequest>('statusRequest', raw);
    if (!v.ok) return { ok: false, error: wireError(v.error) };
    const st = await status(v.value.migrationId);
    return st
      ? { ok: true, status: st }
      : {
          ok: false,
          error: {
            code: errorCodes.unknownMigration,
            message: `no migration ${v.value.migrationId}`,
            field: 'migrationId',
          },
        };
  }

  async function list(raw: unknown): Promise<StatusReply> {
    const v = validators.validate<ListRequest>('listRequest', raw ?? {});
    if (!v.ok) return { ok: false, error: wireError(v.error) };
    const kv = await openBucket(nc, buckets.status);
    const out: MigrationStatus[] = [];
    const junk = (key: string, reason: string) =>
      log.warn({ bucket: buckets.status, key, reason }, 'unreadable status skipped');
    const statuses = validValues<MigrationStatus>(kv, validators, 'migrationStatus', junk);
    for await (const { value: s } of statuses) {
      if (v.value.activeOnly && (s.phase === 'completed' || s.phase === 'rolled-back')) continue;
      out.push(s);
    }
    out.sort((a, b) => a.updatedAt.localeCompare(b.updatedAt));
    return { ok: true, migrations: out };
  }

  const check = createCheck({ nc, validators, pm, admission, trust, log, refused });
  const routes: [string, (raw: unknown, msg: Msg) => Promise<unknown>, string][] = [
    [subjects.apiMigrate, migrate, 'migrateReply'],
    [subjects.apiCheck, check, 'checkReply'],
    [subjects.apiCancel, cancel, 'statusReply'],
    [subjects.apiStatus, statusReq, 'statusReply'],
    [subjects.apiList, list, 'statusReply'],
    ...operatorRoutes(validators, pm, signerOf),
  ];

  /** Answer one request: decode it, run its route, check the reply against its schema (else HAUL_INTERNAL). */
  async function answer(msg: Msg, [subject, fn, replySchema]: (typeof routes)[number]): Promise<void> {
    if (!sentTo(msg, subject)) {
      log.warn({ subject, storedAs: msg.subject }, 'ignored a stored message a consumer pushed onto the API');
      return;
    }
    let reply: unknown;
    try {
      let raw: unknown;
      try {
        raw = msg.data.length ? decodeJson(msg.data) : {};
      } catch {
        raw = undefined;
      }
      reply =
        raw === undefined
          ? reject({
              code: 'HAUL_INVALID_MESSAGE' satisfies ValidationError['code'],
              message: 'the request is not JSON',
              field: '',
            })
          : await fn(raw, msg);
      const check = validators.validate(replySchema as 'statusReply', reply);
      if (!check.ok) throw new Error(`reply breaks its schema: ${check.error.message}`);
    } catch (err) {
      log.error({ err, subject }, 'API request failed');
      reply = reject({ code: errorCodes.internal, message: (err as Error).message, retryable: true });
    }
    msg.respond(encodeJson(reply));
  }

  const subscriptions: Subscription[] = [];
  let deaf: (err: Error) => void = () => undefined;
  /**
   * Rejects once the server refuses or ends a subscription of the API (its permission taken away, at the start or by
   * a reload of the server's configuration): nats.js closes such a subscription, and its requests then find no
   * responder, while the coordinator would go on consuming events as if it served them.
   */
  const failed = new Promise<never>((_resolve, reject) => (deaf = reject));
  return {
    failed,
    /** Answer requests. */
    start(): void {
      for (const route of routes)
        subscriptions.push(
          nc.subscribe(route[0], {
            queue: 'coordinator',
            callback: (err, msg: Msg) =>
              err ? deaf(new Error(`${route[0]}: ${err.message}`, { cause: err })) : void answer(msg, route),
          }),
        );
      subscriptions.push(
        serveDiscovery(
          nc,
          'coordinator',
          pm.meta().actor.node,
          () => ({ active: pm.active.size, endpoints: routes.map((r) => r[0]) }),
          trust,
        ),
      );
    },
    stop(): void {
      for (const s of subscriptions.splice(0)) s.unsubscribe();
    },
  };
}

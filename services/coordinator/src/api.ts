import { randomBytes } from 'node:crypto';
import type { NatsConnection, Msg } from '@nats-io/transport-node';
import {
  buckets,
  decodeJson,
  encodeJson,
  openBucket,
  serveDiscovery,
  subjects,
  type EventLog,
  type Logger,
} from '@haul/bus';
import { CommandRejectedError, decide, deriveStatsOf, projectStatus } from '@haul/domain';
import type {
  CancelRequest,
  ErrorInfo,
  ListRequest,
  MigrateReply,
  MigrateRequest,
  MigrationStatus,
  StatusReply,
  StatusRequest,
  Validators,
} from '@haul/schemas';
import { admit } from './admission.ts';
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
  maxPerNode: number,
) {
  async function migrate(raw: unknown): Promise<MigrateReply> {
    const v = validators.validate<MigrateRequest>('migrateRequest', raw);
    if (!v.ok) return reject(v.error);
    const req = v.value;
    if (req.source === req.target)
      return reject({
        code: 'HAUL_SAME_NODE',
        message: 'source and target are the same node',
        field: 'target',
      });
    const requests = await openBucket(nc, buckets.requests);
    const key = req.requestId.replace(/[^A-Za-z0-9_=-]/g, '_');
    const migrationId = `m-${randomBytes(6).toString('hex')}`;
    try {
      await requests.create(key, encodeJson(migrationId));
    } catch {
      const e = await requests.get(key);
      if (e?.operation === 'PUT')
        return { ok: true, migrationId: decodeJson(e.value) as string, duplicate: true };
      return reject({
        code: 'HAUL_RETRY',
        message: 'the same request is being handled; ask again',
        retryable: true,
      });
    }
    const undo = () => requests.delete(key);
    const adm = await admit(nc, req, maxPerNode);
    if (!adm.ok) {
      await undo();
      return reject(adm.error);
    }
    const locks = await openBucket(nc, buckets.ctLocks);
    try {
      await locks.create(`ct-${req.ctid}`, encodeJson(migrationId).subarray(1, -1));
    } catch {
      const holder = (await locks.get(`ct-${req.ctid}`))?.string();
      await undo();
      return reject({
        code: 'HAUL_CT_BUSY',
        message: `CT ${req.ctid} is already migrating (${holder ?? 'unknown'})`,
        field: 'ctid',
      });
    }
    let events;
    try {
      events = decide(
        { kind: 'RequestMigration', migrationId, request: req, imageRoots: adm.imageRoots, meta: pm.meta() },
        (await pm.load(migrationId)).state,
      );
    } catch (err) {
      await locks.delete(`ct-${req.ctid}`);
      await undo();
      if (err instanceof CommandRejectedError)
        return reject(
          err.field
            ? { code: err.code, message: err.message, field: err.field }
            : { code: err.code, message: err.message },
        );
      throw err;
    }
    await pm.appendAll(events, 0);
    log.info({ migrationId, ctid: req.ctid, source: req.source, target: req.target }, 'migration accepted');
    return { ok: true, migrationId, duplicate: false };
  }

  async function status(mid: string): Promise<MigrationStatus | undefined> {
    const { state, lastSeq } = await pm.load(mid);
    const st = projectStatus(state, lastSeq);
    if (st && !state.terminal) st.stats = deriveStatsOf(state, new Date().toISOString());
    return st;
  }

  async function cancel(raw: unknown): Promise<StatusReply> {
    const v = validators.validate<CancelRequest>('cancelRequest', raw);
    if (!v.ok) return reject(v.error);
    const mid = v.value.migrationId;
    try {
      // decide itself refuses a cancel that comes too late (or for an unknown or finished migration), with a code.
      await pm.step(mid, () => ({
        kind: 'Cancel',
        reason: v.value.reason ?? 'cancelled by an operator',
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
          error: { code: 'HAUL_UNKNOWN_MIGRATION', message: 'no such migration', field: 'migrationId' },
        };
  }

  async function statusReq(raw: unknown): Promise<StatusReply> {
    const v = validators.validate<StatusRequest>('statusRequest', raw);
    if (!v.ok) return { ok: false, error: v.error };
    const st = await status(v.value.migrationId);
    return st
      ? { ok: true, status: st }
      : {
          ok: false,
          error: {
            code: 'HAUL_UNKNOWN_MIGRATION',
            message: `no migration ${v.value.migrationId}`,
            field: 'migrationId',
          },
        };
  }

  async function list(raw: unknown): Promise<StatusReply> {
    const v = validators.validate<ListRequest>('listRequest', raw ?? {});
    if (!v.ok) return { ok: false, error: v.error };
    const kv = await openBucket(nc, buckets.status);
    const out: MigrationStatus[] = [];
    for await (const k of await kv.keys()) {
      const e = await kv.get(k);
      if (!e || e.operation !== 'PUT') continue;
      const s = decodeJson(e.value) as MigrationStatus;
      if (v.value.activeOnly && (s.phase === 'completed' || s.phase === 'rolled-back')) continue;
      out.push(s);
    }
    out.sort((a, b) => a.updatedAt.localeCompare(b.updatedAt));
    return { ok: true, migrations: out };
  }

  const routes: [string, (raw: unknown) => Promise<unknown>, string][] = [
    [subjects.apiMigrate, migrate, 'migrateReply'],
    [subjects.apiCancel, cancel, 'statusReply'],
    [subjects.apiStatus, statusReq, 'statusReply'],
    [subjects.apiList, list, 'statusReply'],
  ];

  return {
    start(): void {
      for (const [subject, fn, replySchema] of routes) {
        nc.subscribe(subject, {
          queue: 'coordinator',
          callback: (_err, msg: Msg) => {
            void (async () => {
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
                    ? reject({ code: 'HAUL_INVALID_MESSAGE', message: 'the request is not JSON', field: '' })
                    : await fn(raw);
                const check = validators.validate(replySchema as 'statusReply', reply);
                if (!check.ok) throw new Error(`reply breaks its schema: ${check.error.message}`);
              } catch (err) {
                log.error({ err, subject }, 'API request failed');
                reply = reject({ code: 'HAUL_INTERNAL', message: (err as Error).message, retryable: true });
              }
              msg.respond(encodeJson(reply));
            })();
          },
        });
      }
      serveDiscovery(nc, 'coordinator', pm.meta().actor.node, () => ({
        active: pm.active.size,
        endpoints: routes.map((r) => r[0]),
      }));
    },
  };
}

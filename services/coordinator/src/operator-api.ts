import { subjects } from '@haul/bus';
import { CommandRejectedError, askedBy, errorCodes, projectStatus, type DecideInput } from '@haul/domain';
import {
  wireError,
  type ErrorInfo,
  type ResolveRequest,
  type RetryRequest,
  type StatusReply,
  type Validators,
} from '@haul/schemas';
import type { Msg } from '@nats-io/transport-node';
import type { ProcessManager } from './process-manager.ts';
import type { SignerOf } from './signer.ts';

/** One API endpoint: its subject, its handler and the schema its reply must satisfy. */
export type ApiRoute = [string, (raw: unknown, msg: Msg) => Promise<unknown>, string];

/**
 * The operator's actions on a stuck migration (docs/protocol.md, "Stuck migrations"): retry the stuck action, or
 * resolve it (done by hand). Each goes through the process manager like a cancel: the core decides from the log
 * whether it is allowed, and a refusal comes back with its code and field. Each records who asked (the request's
 * verified signer, as for migrate); a signature that does not verify is refused.
 */
export function operatorRoutes(validators: Validators, pm: ProcessManager, signerOf: SignerOf): ApiRoute[] {
  async function act(migrationId: string, input: () => DecideInput): Promise<StatusReply> {
    try {
      await pm.step(migrationId, input);
    } catch (err) {
      if (err instanceof CommandRejectedError) return { ok: false, error: rejection(err) };
      throw err;
    }
    const { state, lastSeq } = await pm.load(migrationId);
    const status = projectStatus(state, lastSeq);
    return status
      ? { ok: true, status }
      : {
          ok: false,
          error: { code: errorCodes.unknownMigration, message: 'no such migration', field: 'migrationId' },
        };
  }

  async function retry(raw: unknown, msg: Msg): Promise<StatusReply> {
    const v = validators.validate<RetryRequest>('retryRequest', raw);
    if (!v.ok) return { ok: false, error: wireError(v.error) };
    const who = signerOf(msg);
    if (!who.ok) return { ok: false, error: who.error };
    const reason = v.value.reason ?? 'retried by an operator';
    return act(v.value.migrationId, () => ({ kind: 'Retry', reason, ...askedBy(who.name), meta: pm.meta() }));
  }

  async function resolve(raw: unknown, msg: Msg): Promise<StatusReply> {
    const v = validators.validate<ResolveRequest>('resolveRequest', raw);
    if (!v.ok) return { ok: false, error: wireError(v.error) };
    const who = signerOf(msg);
    if (!who.ok) return { ok: false, error: who.error };
    const { migrationId, action } = v.value;
    const reason = v.value.reason ?? 'done by hand by an operator';
    return act(migrationId, () => ({
      kind: 'Resolve',
      action,
      reason,
      ...askedBy(who.name),
      ...(v.value.targetIdle === true ? { targetIdle: true } : {}),
      meta: pm.meta(),
    }));
  }

  return [
    [subjects.apiRetry, retry, 'statusReply'],
    [subjects.apiResolve, resolve, 'statusReply'],
  ];
}

const rejection = (err: CommandRejectedError): ErrorInfo =>
  err.field
    ? { code: err.code, message: err.message, field: err.field }
    : { code: err.code, message: err.message };

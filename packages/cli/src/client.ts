import {
  PermissionViolationError,
  RequestError,
  TimeoutError,
  type NatsConnection,
} from '@nats-io/transport-node';
import {
  changeApi,
  decodeJson,
  encodeJson,
  limits,
  identityEnv,
  identityFileOf,
  IdentityFileError,
  loadSeed,
  signWith,
  signedRequest,
  subjects,
  TrustConfigError,
  type SignatureHeaders,
} from '@haul/bus';
import type { CheckReply, MigrateReply, MigrateRequest, StatusReply } from '@haul/schemas';
import { CliError, NoCoordinatorError, WaitTimeoutError } from './errors.ts';

/** Signs a request as this process's identity, so the coordinator records who asked (none: sent unsigned). */
export type RequestSigner = (subject: string, body: Uint8Array) => SignatureHeaders | undefined;

/**
 * The key the CLI logs in with (HAUL_NKEY_SEED_FILE, or the seed of HAUL_CREDS_FILE) also signs its API requests;
 * HAUL_INSECURE=1 signs nothing. A file that cannot be read or holds no seed, or both variables set, throws
 * TrustConfigError naming the variable (a usage error).
 */
export function signerFromEnv(env: NodeJS.ProcessEnv): RequestSigner | undefined {
  if (env['HAUL_INSECURE'] === '1') return undefined;
  let id: ReturnType<typeof identityFileOf>;
  try {
    id = identityFileOf({
      nkeySeedFile: env[identityEnv.nkeySeedFile] || undefined,
      credsFile: env[identityEnv.credsFile] || undefined,
    });
  } catch (err) {
    if (err instanceof IdentityFileError) throw new TrustConfigError(identityEnv[err.setting], err.message);
    throw err;
  }
  if (!id) return undefined;
  const kp = loadSeed(id.file, id.setting);
  return (subject, body) => signWith(kp, subject, body);
}

const changeSubjects = new Set(changeApi);

/** The permission NATS refused, when that is why a request failed (as such, or as a request error's cause). */
function permissionDenied(err: unknown): PermissionViolationError | undefined {
  if (err instanceof PermissionViolationError) return err;
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof PermissionViolationError ? cause : undefined;
}

/**
 * The scheduler API as a client calls it (request/reply on NATS). Throws NoCoordinatorError when nobody serves
 * the subject, WaitTimeoutError when the reply does not come in time.
 *
 * A busy coordinator can take longer than one request's timeout to answer. Requests whose repetition changes
 * nothing (migrate is deduplicated by its requestId; status, list and check only read) are asked again, with the
 * same body, until limits.apiDeadlineMs has passed; the others (cancel, retry, resolve) are asked once.
 */
export function createApiClient(nc: NatsConnection, sign?: RequestSigner) {
  const once = async <T>(
    subject: string,
    req: unknown,
    timeoutMs: number = limits.apiTimeoutMs,
  ): Promise<T> => {
    const body = encodeJson(req);
    try {
      const m = await signedRequest(nc, subject, body, sign?.(subject, body), timeoutMs);
      return decodeJson(m.data) as T;
    } catch (err) {
      if (err instanceof RequestError && err.isNoResponders())
        throw new NoCoordinatorError(subject, { cause: err });
      const denied = permissionDenied(err);
      if (denied)
        throw new CliError(
          'rejected',
          `NATS does not let this identity ${denied.operation === 'publish' ? 'publish to' : 'subscribe to'} ${denied.subject}: ${changeSubjects.has(subject) ? 'migrate, cancel, retry and resolve need the scheduler identity' : 'the request needs another identity'} (HAUL_NKEY_SEED_FILE)`,
          { cause: err },
        );
      if (err instanceof TimeoutError)
        throw new WaitTimeoutError(`no reply on ${subject}: timed out after ${timeoutMs} ms`, {
          cause: err,
        });
      throw err;
    }
  };
  const idempotent = async <T>(
    subject: string,
    body: unknown,
    timeoutMs: number = limits.apiTimeoutMs,
  ): Promise<T> => {
    const deadline = Date.now() + Math.max(limits.apiDeadlineMs, timeoutMs);
    for (;;) {
      try {
        return await once<T>(subject, body, timeoutMs);
      } catch (err) {
        if (!(err instanceof WaitTimeoutError) || Date.now() + timeoutMs > deadline) throw err;
      }
    }
  };
  return {
    migrate: (req: MigrateRequest) => idempotent<MigrateReply>(subjects.apiMigrate, req),
    /** Would this migration work (haul.api.check)? Changes nothing; each ask waits limits.checkTimeoutMs. */
    check: (req: MigrateRequest) => idempotent<CheckReply>(subjects.apiCheck, req, limits.checkTimeoutMs),
    cancel: (migrationId: string, reason?: string) =>
      once<StatusReply>(subjects.apiCancel, reason ? { migrationId, reason } : { migrationId }),
    status: (migrationId: string) => idempotent<StatusReply>(subjects.apiStatus, { migrationId }),
    list: (activeOnly = false) => idempotent<StatusReply>(subjects.apiList, { activeOnly }),
    retry: (migrationId: string, reason?: string) =>
      once<StatusReply>(subjects.apiRetry, reason ? { migrationId, reason } : { migrationId }),
    resolve: (migrationId: string, action: string, reason?: string, opts: { targetIdle?: boolean } = {}) =>
      once<StatusReply>(subjects.apiResolve, {
        migrationId,
        action,
        ...(reason ? { reason } : {}),
        ...(opts.targetIdle ? { targetIdle: true } : {}),
      }),
  };
}

export type ApiClient = ReturnType<typeof createApiClient>;

import { RequestError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { decodeJson, encodeJson, limits, subjects } from '@haul/bus';
import type { MigrateReply, MigrateRequest, StatusReply } from '@haul/schemas';
import { NoCoordinatorError, WaitTimeoutError } from './errors.ts';

/**
 * The scheduler API as a client calls it (request/reply on NATS). Throws NoCoordinatorError when nobody serves
 * the subject, WaitTimeoutError when the reply does not come in time.
 *
 * A busy coordinator can take longer than one request's timeout to answer. Requests whose repetition changes
 * nothing (migrate is deduplicated by its requestId; status and list only read) are asked again, with the same body,
 * until limits.apiDeadlineMs has passed; the others (cancel, retry, resolve) are asked once.
 */
export function createApiClient(nc: NatsConnection) {
  const once = async <T>(subject: string, body: unknown): Promise<T> => {
    try {
      const m = await nc.request(subject, encodeJson(body), { timeout: limits.apiTimeoutMs });
      return decodeJson(m.data) as T;
    } catch (err) {
      if (err instanceof RequestError && err.isNoResponders())
        throw new NoCoordinatorError(subject, { cause: err });
      if (err instanceof TimeoutError)
        throw new WaitTimeoutError(`no reply on ${subject}: timed out after ${limits.apiTimeoutMs} ms`, {
          cause: err,
        });
      throw err;
    }
  };
  const idempotent = async <T>(subject: string, body: unknown): Promise<T> => {
    const deadline = Date.now() + limits.apiDeadlineMs;
    for (;;) {
      try {
        return await once<T>(subject, body);
      } catch (err) {
        if (!(err instanceof WaitTimeoutError) || Date.now() + limits.apiTimeoutMs > deadline) throw err;
      }
    }
  };
  return {
    migrate: (req: MigrateRequest) => idempotent<MigrateReply>(subjects.apiMigrate, req),
    cancel: (migrationId: string, reason?: string) =>
      once<StatusReply>(subjects.apiCancel, reason ? { migrationId, reason } : { migrationId }),
    status: (migrationId: string) => idempotent<StatusReply>(subjects.apiStatus, { migrationId }),
    list: (activeOnly = false) => idempotent<StatusReply>(subjects.apiList, { activeOnly }),
    retry: (migrationId: string, reason?: string) =>
      once<StatusReply>(subjects.apiRetry, reason ? { migrationId, reason } : { migrationId }),
    resolve: (migrationId: string, action: string, reason?: string) =>
      once<StatusReply>(
        subjects.apiResolve,
        reason ? { migrationId, action, reason } : { migrationId, action },
      ),
  };
}

export type ApiClient = ReturnType<typeof createApiClient>;

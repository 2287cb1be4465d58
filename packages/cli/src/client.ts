import type { NatsConnection } from '@nats-io/transport-node';
import { decodeJson, encodeJson, limits, subjects } from '@haul/bus';
import type { MigrateReply, MigrateRequest, StatusReply } from '@haul/schemas';

/** The scheduler API as a client calls it (request/reply on NATS). */
export function createApiClient(nc: NatsConnection) {
  const call = async <T>(subject: string, body: unknown): Promise<T> => {
    try {
      const m = await nc.request(subject, encodeJson(body), { timeout: limits.apiTimeoutMs });
      return decodeJson(m.data) as T;
    } catch (err) {
      const msg = (err as Error).message;
      if (/no responders/i.test(msg)) throw new Error('no coordinator is answering on NATS (is it running?)');
      throw err;
    }
  };
  return {
    migrate: (req: MigrateRequest) => call<MigrateReply>(subjects.apiMigrate, req),
    cancel: (migrationId: string, reason?: string) =>
      call<StatusReply>(subjects.apiCancel, reason ? { migrationId, reason } : { migrationId }),
    status: (migrationId: string) => call<StatusReply>(subjects.apiStatus, { migrationId }),
    list: (activeOnly = false) => call<StatusReply>(subjects.apiList, { activeOnly }),
    retry: (migrationId: string, reason?: string) =>
      call<StatusReply>(subjects.apiRetry, reason ? { migrationId, reason } : { migrationId }),
    resolve: (migrationId: string, action: string, reason?: string) =>
      call<StatusReply>(
        subjects.apiResolve,
        reason ? { migrationId, action, reason } : { migrationId, action },
      ),
  };
}

import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  commandRefusals,
  decodeJson,
  encodeJson,
  requestSigner,
  sentTo,
  subjects,
  type Logger,
  type RequestSigner,
  type Trust,
} from '@haul/bus';
import type { ErrorInfo, InspectReply, InspectRequest, Validators } from '@haul/schemas';
import { errorCodes } from '@haul/domain';
import type { Tools } from './adapters/tools.ts';
import type { AgentConfig } from './context.ts';
import { inspectCt } from './handlers/preflight.ts';

const refuse = (error: ErrorInfo): InspectReply => ({ ok: false, error });

/** Why an inspection's sender may not ask, or nothing: in a secure cluster only a coordinator may. */
function refusalOf(who: RequestSigner): string | undefined {
  switch (who.kind) {
    case 'anyone':
      return undefined;
    case 'unsigned':
      return 'unsigned';
    case 'forged':
      return who.reason;
    case 'signed':
      return who.identity.role === 'coordinator'
        ? undefined
        : `signed by ${who.identity.name}, not a coordinator`;
  }
}

/**
 * Answer a coordinator's inspections of this node's CTs (haul.inspect.<node>, for haul.api.check): the preflight's
 * findings, read only. Only a request signed by a coordinator is answered (it reveals the host's disks and config);
 * inspections run beside commands, not in the host slot, since they change nothing.
 */
export function serveInspections(deps: {
  nc: NatsConnection;
  validators: Validators;
  cfg: AgentConfig;
  tools: Tools;
  trust: Trust;
  log: Logger;
}): Subscription {
  const { nc, validators, cfg, trust, log } = deps;
  const subject = subjects.inspect(cfg.node);
  async function answer(data: Uint8Array, headers: Parameters<Trust['verify']>[2]): Promise<InspectReply> {
    const who = requestSigner(trust, subject, data, headers);
    const reason = refusalOf(who);
    if (reason) {
      // A good signature of another role: refused here as the permissions would (requestSigner recorded the rest).
      if (who.kind === 'signed') trust.reject({ kind: 'command', subject, reason });
      return refuse({ code: commandRefusals.unauthenticated, message: `inspection refused: ${reason}` });
    }
    let raw: unknown;
    try {
      raw = decodeJson(data);
    } catch {
      return refuse({ code: commandRefusals.invalid, message: 'the request is not JSON', field: '' });
    }
    const v = validators.validate<InspectRequest>('inspectRequest', raw);
    if (!v.ok) return refuse(v.error);
    return { ok: true, inspection: await inspectCt(cfg, deps.tools, v.value.ctid) };
  }
  return nc.subscribe(subject, {
    queue: 'node-agent',
    callback: (_err, msg) => {
      if (!sentTo(msg, subject)) return; // a stored message pushed here by a consumer (sent-to.ts)
      void answer(msg.data, msg.headers)
        .catch((err: unknown) => {
          log.error({ err }, 'inspection failed');
          return refuse({ code: errorCodes.agentError, message: (err as Error).message });
        })
        .then((reply) => msg.respond(encodeJson(reply)));
    },
  });
}

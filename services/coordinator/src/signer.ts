import type { Msg } from '@nats-io/transport-node';
import { signatureHeaders, type Trust } from '@haul/bus';
import { errorCodes } from '@haul/domain';
import type { ErrorInfo } from '@haul/schemas';

/** Who sent an API request: the verified identity's name (none: unsigned), or why the request is refused. */
export type SignerOf = (msg: Msg) => { ok: true; name?: string } | { ok: false; error: ErrorInfo };

/**
 * Who sent a request: the registered identity whose signature (Haul-Signer, Haul-Signature over the subject and
 * body, as for commands and events) verifies. An unsigned request is answered as before, with no name to record
 * (NATS permissions still decided who may publish it); a signature that does not verify — a key the registry does
 * not know, or bytes it was not made for — claims an identity falsely and is refused. Used by every request that
 * changes a migration (migrate, cancel, retry, resolve), so each records who asked.
 */
export function createSignerOf(trust: Trust): SignerOf {
  return (msg) => {
    if (!trust.secure || !msg.headers?.get(signatureHeaders.signer)) return { ok: true };
    const v = trust.verify(msg.subject, msg.data, msg.headers);
    if (v.ok) return v.identity ? { ok: true, name: v.identity.name } : { ok: true };
    trust.reject({
      kind: 'command',
      subject: msg.subject,
      reason: v.reason,
      ...(v.claimed ? { claimed: v.claimed } : {}),
    });
    return {
      ok: false,
      error: { code: errorCodes.badSignature, message: `the request's signature: ${v.reason}` },
    };
  };
}

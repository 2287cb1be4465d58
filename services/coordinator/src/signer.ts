import type { Msg } from '@nats-io/transport-node';
import { changeApiRole as changer, requestSigner, type Trust } from '@haul/bus';
import { errorCodes } from '@haul/domain';
import type { ErrorInfo } from '@haul/schemas';

/** Who sent an API request: the verified identity's name (none: an insecure cluster), or why it is refused. */
export type SignerOf = (msg: Msg) => { ok: true; name?: string } | { ok: false; error: ErrorInfo };

/**
 * Who sent a request that changes a migration (migrate, cancel, retry, resolve): the registered identity whose
 * signature (Haul-Signer, Haul-Signature over the subject and body, as for commands and events) verifies, so the
 * log records who asked. NATS permissions decide who may publish, but a responder is not told who did: in a secure
 * cluster an unsigned request is refused (HAUL_UNSIGNED_REQUEST), so is one signed by a registered identity that is
 * not the scheduler (HAUL_SIGNER_NOT_ALLOWED: the same rule as the permissions, checked again here), and a signature
 * that does not verify — a key the registry does not know, or bytes it was not made for — claims an identity falsely
 * (HAUL_BAD_SIGNATURE). An insecure cluster records nobody.
 */
export function createSignerOf(trust: Trust): SignerOf {
  const refuse = (code: string, message: string) => ({ ok: false as const, error: { code, message } });
  return (msg) => {
    const who = requestSigner(trust, msg.subject, msg.data, msg.headers);
    switch (who.kind) {
      case 'anyone':
        return { ok: true };
      case 'unsigned':
        return refuse(
          errorCodes.unsignedRequest,
          `${msg.subject}: a request that changes a migration must be signed by the ${changer} identity (the CLI signs with HAUL_NKEY_SEED_FILE)`,
        );
      case 'forged':
        return refuse(errorCodes.badSignature, `the request's signature: ${who.reason}`);
      case 'signed':
        return who.identity.role === changer
          ? { ok: true, name: who.identity.name }
          : refuse(
              errorCodes.signerNotAllowed,
              `${msg.subject}: signed by ${who.identity.name}, but only the ${changer} identity may change a migration`,
            );
    }
  };
}

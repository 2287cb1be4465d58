import { signatureHeaders, type Trust } from '@haul/bus';
import { errorCodes } from '@haul/domain';
import type { ErrorInfo, StreamOffer } from '@haul/schemas';

type Headers = Parameters<Trust['verify']>[2];

/**
 * Why an offer is refused for who sent it, or nothing. Every streamer may publish offers to every other (NATS
 * permissions match subjects, not the body), and NATS does not tell a responder who published: so in a secure
 * cluster an offer is taken only when the streamer of the node it names as its sender signed it (Haul-Signer,
 * Haul-Signature over the subject and body, as for commands and events). Without it a streamer could offer another
 * node's intended transfer in that node's name and end its reception running here. An unsigned offer is
 * HAUL_UNSIGNED_REQUEST (a sender older than signed offers too), a signature that does not verify HAUL_BAD_SIGNATURE
 * (recorded as a forgery), another identity's HAUL_SIGNER_NOT_ALLOWED. An insecure cluster checks nothing.
 */
export async function offerSignerRefusal(
  trust: Trust,
  subject: string,
  data: Uint8Array,
  headers: Headers,
  offer: Pick<StreamOffer, 'fromNode'>,
): Promise<ErrorInfo | undefined> {
  if (!trust.secure) return undefined;
  const sender = `streamer@${offer.fromNode}`;
  if (!headers?.get(signatureHeaders.signer))
    return {
      code: errorCodes.unsignedRequest,
      message: `${subject}: an offer must be signed by the sending streamer (${sender})`,
    };
  const v = await trust.verifyAsync(subject, data, headers);
  if (!v.ok) {
    trust.reject({
      kind: 'command',
      subject,
      reason: v.reason,
      ...(v.claimed ? { claimed: v.claimed } : {}),
    });
    return { code: errorCodes.badSignature, message: `the offer's signature: ${v.reason}` };
  }
  const { identity } = v;
  if (identity?.role !== 'streamer' || identity.node !== offer.fromNode)
    return {
      code: errorCodes.signerNotAllowed,
      message: `an offer from ${offer.fromNode} signed by ${identity?.name ?? 'nobody'}: only ${sender} may send it`,
      field: 'fromNode',
    };
  return undefined;
}

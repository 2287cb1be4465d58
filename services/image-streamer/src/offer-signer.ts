import { requestSigner, type Trust } from '@haul/bus';
import { errorCodes } from '@haul/domain';
import type { ErrorInfo, StreamOffer } from '@haul/schemas';

/**
 * Why an offer is refused for who sent it, or nothing. Every streamer may publish offers to every other (NATS
 * permissions match subjects, not the body), and NATS does not tell a responder who published: so in a secure
 * cluster an offer is taken only when the streamer of the node it names as its sender signed it (requestSigner).
 * Without it a streamer could offer another node's intended transfer in that node's name and end its reception
 * running here. An unsigned offer is HAUL_UNSIGNED_REQUEST (a sender older than signed offers too), a signature that
 * does not verify HAUL_BAD_SIGNATURE, another identity's HAUL_SIGNER_NOT_ALLOWED. An insecure cluster checks nothing.
 */
export function offerSignerRefusal(
  trust: Trust,
  subject: string,
  data: Uint8Array,
  headers: Parameters<typeof requestSigner>[3],
  offer: Pick<StreamOffer, 'fromNode'>,
): ErrorInfo | undefined {
  const sender = `streamer@${offer.fromNode}`;
  const who = requestSigner(trust, subject, data, headers);
  switch (who.kind) {
    case 'anyone':
      return undefined;
    case 'unsigned':
      return {
        code: errorCodes.unsignedRequest,
        message: `${subject}: an offer must be signed by ${sender}`,
      };
    case 'forged':
      return { code: errorCodes.badSignature, message: `the offer's signature: ${who.reason}` };
    case 'signed':
      return who.identity.role === 'streamer' && who.identity.node === offer.fromNode
        ? undefined
        : {
            code: errorCodes.signerNotAllowed,
            message: `an offer from ${offer.fromNode} signed by ${who.identity.name}: only ${sender} may send it`,
            field: 'fromNode',
          };
  }
}

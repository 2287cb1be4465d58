import { createHash, type Hash } from 'node:crypto';
import { signatureHeaders, type HeaderReader } from './signature.ts';

/**
 * A migration's seal: the coordinator's signed word for a finished migration's log, so that a reader of many
 * finished migrations checks one signature per migration instead of one per message. bench:control measured why it
 * matters: rebuilding the status of 10,000 finished migrations spent 110 µs per message on its Ed25519 check, against
 * about 12 µs per message for a raw read of the same stream.
 *
 * The digest: SHA-256 over the messages of one migration's subject in stream order, each framed as
 *
 *     seq (8 bytes, big-endian) ‖ length of signer (2 bytes) ‖ signer ‖ length of data (4 bytes) ‖ data
 *
 * signer: the message's Haul-Signer header (its signer's public key, ASCII; empty when unsigned); data: its bytes as
 * stored. The sequence binds each message to its place, the signer to who the authority check says wrote it. One
 * hash runs over the whole log (a writer keeps it open and digests a copy when it seals): a digest per message
 * would cost a reader twice the hashing.
 *
 * Writer (the coordinator, services/coordinator/src/sealer.ts): its judge folds into the chain every message it
 * believed (signature and authority checked), as its consumer delivers them in order. When its own terminal event
 * comes back to it and the chain ends there, it appends MigrationSealed {upToSeq, events, digest}, expecting that
 * terminal event to be the subject's last message (compare-and-set): so a seal comes only right after what it
 * covers, and at most once. A seal that could not be written (a crash before it, a message after the terminal one)
 * costs the readers time, never correctness: they check each message as they did before seals.
 *
 * Reader (EventLog.replay): it folds every message of the subject it reads, believed or not. At a seal it believes
 * (signed by a coordinator, checked), whose upToSeq, events and digest equal its own chain, every message before it
 * is one the coordinator believed, with the signer it carries: the reader checks who may write what (cheap) but not
 * each signature. On any difference — a forgery in the log that the coordinator skipped, a chain the coordinator
 * broke by handling a redelivery out of order, messages aged out of the stream — it checks each message itself. So
 * a seal can spare work but never make a reader believe a message the coordinator did not believe.
 *
 * What it adds to the coordinator key: the power to vouch, for a finished migration, for executors' messages the
 * coordinator saw in the log. That key already decides every migration and addresses every command; the executors'
 * own signatures still keep any other node's key from writing as them, and each message's signature stays in the
 * stream for anyone who wants to check it.
 */

export type Chain = {
  /** The hash of the messages folded so far (digest a copy: it stays open for the next). */
  hash: Hash;
  /** The stream sequence of the last message folded. */
  seq: number;
  /** How many messages were folded. */
  events: number;
};

/** What a MigrationSealed event says (its data). */
export type SealData = { upToSeq: number; events: number; digest: string };

/** A new chain, empty. */
export const newChain = (): Chain => ({ hash: createHash('sha256'), seq: 0, events: 0 });

const frame = Buffer.allocUnsafe(14 + 0xffff);

/** Fold one message into the chain (in place). */
export function extendChain(
  chain: Chain,
  seq: number,
  headers: HeaderReader | undefined,
  data: Uint8Array,
): void {
  const signer = headers?.get(signatureHeaders.signer) ?? '';
  const signerBytes = Buffer.byteLength(signer);
  if (signerBytes > 0xffff) throw new RangeError(`a Haul-Signer header of ${signerBytes} bytes`);
  // One frame buffer for every message (update copies what it hashes at once): a replay frames every message.
  frame.writeUInt32BE(Math.floor(seq / 2 ** 32), 0);
  frame.writeUInt32BE(seq >>> 0, 4);
  frame.writeUInt16BE(signerBytes, 8);
  frame.write(signer, 10, 'utf8');
  frame.writeUInt32BE(data.byteLength, 10 + signerBytes);
  chain.hash.update(frame.subarray(0, 14 + signerBytes)).update(data);
  chain.seq = seq;
  chain.events++;
}

/** The seal's data for a chain (the chain stays open). */
export const sealDataOf = (chain: Chain): SealData => ({
  upToSeq: chain.seq,
  events: chain.events,
  digest: `sha256:${chain.hash.copy().digest('hex')}`,
});

/** Does this seal vouch for exactly the messages folded into `chain`? */
export function sealMatches(seal: SealData, chain: Chain): boolean {
  if (seal.upToSeq !== chain.seq || seal.events !== chain.events) return false;
  return seal.digest === `sha256:${chain.hash.copy().digest('hex')}`;
}

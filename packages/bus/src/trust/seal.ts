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
 * The seal also names the first message's sequence and the signers of the messages it vouches for (`fromSeq`,
 * `signers`, sorted): a reader whose chain is equal has the same, and one that does not read the messages at all
 * (EventLog.replaySeals, for statuses) checks that the stream still holds them and asks its own registry about each
 * signer (EventJudge.sealAlone).
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
  /** The stream sequence of the first message folded (0 while none is). */
  firstSeq: number;
  /** The signers of the messages folded (their Haul-Signer headers; '' for an unsigned one). */
  signers: Set<string>;
};

/**
 * What a MigrationSealed event says (its data). `fromSeq` and `signers`: the sequence of the first message it vouches
 * for and their signers, sorted, so that a reader that takes the seal's status without reading them can still tell
 * that the stream holds them all and ask its own registry about each (seals written before they were added lack
 * them).
 */
export type SealData = {
  upToSeq: number;
  events: number;
  digest: string;
  fromSeq?: number;
  signers?: [string, ...string[]];
};

/** A new chain, empty. */
export const newChain = (): Chain => ({
  hash: createHash('sha256'),
  seq: 0,
  events: 0,
  firstSeq: 0,
  signers: new Set(),
});

/** One message as the chain frames it. */
export type ChainLink = { seq: number; headers?: HeaderReader | undefined; data: Uint8Array };

/** The frame before a message's data (see above); its signer read from its Haul-Signer header. */
function writeFrame(to: Buffer, at: number, seq: number, signer: string, signerBytes: number): number {
  to.writeUInt32BE(Math.floor(seq / 2 ** 32), at);
  to.writeUInt32BE(seq >>> 0, at + 4);
  to.writeUInt16BE(signerBytes, at + 8);
  to.write(signer, at + 10, 'utf8');
  return at + 10 + signerBytes;
}

const signerOf = (headers: HeaderReader | undefined): { signer: string; bytes: number } => {
  const signer = headers?.get(signatureHeaders.signer) ?? '';
  const bytes = Buffer.byteLength(signer);
  if (bytes > 0xffff) throw new RangeError(`a Haul-Signer header of ${bytes} bytes`);
  return { signer, bytes };
};

/** Fold one message into the chain (in place). */
export function extendChain(
  chain: Chain,
  seq: number,
  headers: HeaderReader | undefined,
  data: Uint8Array,
): void {
  extendChainWith(chain, [{ seq, headers, data }]);
}

/** Room for the frames and data of one log, kept between calls (a replay frames every log of the stream). */
const linksKept = 1 << 20;
let links = Buffer.allocUnsafe(1 << 16);

/**
 * Fold a run of messages into the chain (in place), in order: the same digest as folding them one at a time, the
 * frames and data laid out in one buffer and hashed in one update. A replay frames every message of the stream: two
 * updates per message (about 1 µs each on the CI machine) were a tenth of its time beyond a raw read.
 */
export function extendChainWith(chain: Chain, messages: readonly ChainLink[]): void {
  const signers = messages.map((m) => signerOf(m.headers));
  let size = 0;
  for (let i = 0; i < messages.length; i++) size += 14 + signers[i]!.bytes + messages[i]!.data.byteLength;
  if (size > links.length) links = Buffer.allocUnsafe(Math.max(size, links.length * 2));
  let at = 0;
  for (let i = 0; i < messages.length; i++) {
    const { seq, data } = messages[i]!;
    at = writeFrame(links, at, seq, signers[i]!.signer, signers[i]!.bytes);
    at = links.writeUInt32BE(data.byteLength, at);
    links.set(data, at);
    at += data.byteLength;
  }
  chain.hash.update(links.subarray(0, at));
  // A log larger than what is kept between calls leaves its buffer to the collector.
  if (links.length > linksKept) links = Buffer.allocUnsafe(linksKept);
  for (const { signer } of signers) chain.signers.add(signer);
  chain.firstSeq ||= messages[0]?.seq ?? 0;
  chain.seq = messages.at(-1)?.seq ?? chain.seq;
  chain.events += messages.length;
}

/** The seal's data for a chain (the chain stays open). */
export function sealDataOf(chain: Chain): SealData {
  const [first, ...more] = signersOf(chain);
  return {
    upToSeq: chain.seq,
    events: chain.events,
    digest: `sha256:${chain.hash.copy().digest('hex')}`,
    ...(first === undefined ? {} : { fromSeq: chain.firstSeq, signers: [first, ...more] }),
  };
}

const signersOf = (chain: Chain): string[] => [...chain.signers].sort();

/**
 * Does this seal vouch for exactly the messages folded into `chain`? A seal that names a first sequence and signers
 * must name exactly theirs: one that names others says something false of the messages it vouches for, so it vouches
 * for nothing.
 */
export function sealMatches(seal: SealData, chain: Chain): boolean {
  if (seal.upToSeq !== chain.seq || seal.events !== chain.events) return false;
  if (seal.fromSeq !== undefined && seal.fromSeq !== chain.firstSeq) return false;
  if (seal.signers && seal.signers.join('\n') !== signersOf(chain).join('\n')) return false;
  return seal.digest === `sha256:${chain.hash.copy().digest('hex')}`;
}

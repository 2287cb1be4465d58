import type { JsMsg } from '@nats-io/jetstream';
import type { HeaderReader } from './trust/signature.ts';

/**
 * A message's headers read from its own bytes when asked for, one header at a time, instead of nats.js decoding all
 * of them first (MsgHdrsImpl.decode: the block as a string, split into lines, a Map of arrays). A replay reads every
 * message of the stream and asks each for one header (Haul-Signer, for the seal chain and the registry check): in a
 * profile of a replay of 10,000 finished migrations, that decode took 7 % of the time, and its garbage a share of
 * the collector's 15 %.
 *
 * The bytes are those nats.js keeps for the message (its Msg's `_rdata`, the headers' length `_msg.hdr`): not a
 * public API. Where they are not as nats.js 3.4 keeps them, `msg.headers` answers instead: slower, the same answers.
 * raw-headers.int.test.ts checks, on messages from a real server, that the pinned nats.js takes the fast path and
 * that it answers every header as `msg.headers` does.
 */
export function headersOf(msg: JsMsg): HeaderReader | undefined {
  const block = headerBlockOf(msg);
  if (block === null) return msg.headers;
  return block && new RawHeaders(block);
}

/** The message's header bytes as nats.js holds them; undefined: it has none; null: not where nats.js 3.4 keeps them. */
export function headerBlockOf(msg: JsMsg): Buffer | undefined | null {
  const inner = (msg as unknown as { msg?: { _rdata?: unknown; _msg?: { hdr?: unknown } } }).msg;
  const hdr = inner?._msg?.hdr;
  const data = inner?._rdata;
  if (typeof hdr !== 'number' || !(data instanceof Uint8Array) || hdr > data.byteLength) return null;
  return hdr < 0 ? undefined : Buffer.from(data.buffer, data.byteOffset, hdr);
}

/** Each name asked for, as the bytes that start its line: CR LF, the name, a colon. */
const lineStarts = new Map<string, Buffer>();
const lineStartOf = (name: string): Buffer => {
  let b = lineStarts.get(name);
  if (!b) lineStarts.set(name, (b = Buffer.from(`\r\n${name}:`)));
  return b;
};
const crlf = Buffer.from('\r\n');

/**
 * A NATS header block (`NATS/1.0[ status]\r\nName: value\r\n…\r\n\r\n`) answering as nats.js's MsgHdrs.get does
 * with its default exact match: the first value of that name, trimmed; '' when there is none.
 */
class RawHeaders implements HeaderReader {
  private readonly block: Buffer;
  /** The last answer: a replay asks each message for its signer twice in a row (its chain, its registry check). */
  private last: { name: string; value: string } | undefined;
  constructor(block: Buffer) {
    this.block = block;
  }
  get(name: string): string {
    if (this.last?.name !== name) this.last = { name, value: this.find(name) };
    return this.last.value;
  }
  private find(name: string): string {
    const start = lineStartOf(name);
    const at = this.block.indexOf(start);
    if (at < 0) return '';
    const from = at + start.length;
    const end = this.block.indexOf(crlf, from);
    return this.block.toString('utf8', from, end < 0 ? this.block.length : end).trim();
  }
}

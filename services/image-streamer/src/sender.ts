import type { Socket } from 'node:net';
import { limits } from '@haul/bus';
import { ConnectionLost } from './data-server.ts';
import type { ManifestEntry } from './manifest.ts';
import { SourceFiles } from './source-files.ts';
import { CHUNK, chunkDigest, chunkHeader, encodeHeader } from './wire.ts';

export type SendStats = { bytesSent: number; resumedBytes: number; resent: number };
export type SendOptions = {
  sourceDir: string;
  manifest: ManifestEntry[];
  /** The receiver's connection, its token line (and certificate) already checked (see DataServer). */
  sock: Socket;
  /** Bytes already verified per path (the offer reply): sending resumes there. */
  verified: Record<string, number | undefined>;
  /**
   * The receiver finishes a file verified to its end with no chunk of it (the offer reply's `finishesVerified`).
   * Without it (an older receiver), the last chunk of such a file is sent again, as older senders did: an older
   * receiver finishes a part file verified to its end only on that chunk.
   */
  finishesVerified?: boolean;
  throttle: (bytes: number) => Promise<void>;
  onBytes: (n: number) => void;
  /** Told of each file before its first byte is sent (a file sent from its start, not resumed). */
  onFileStart?: (path: string) => void;
  /** Test seam: change a chunk after its digest was taken (a corruption in flight). */
  tamper?: (path: string, offset: number, data: Buffer) => void;
  window?: number;
  /** Nothing moved on the connection this long (the receiver stopped reading or answering): ConnectionLost. */
  idleMs?: number;
  /**
   * An update pass of a disk copy: send only these byte ranges [start, end) of each file (in pieces of at most a
   * chunk, at any offset), and nothing of a file it gives none for. Absent: every file from its verified offset.
   */
  pieces?: (e: ManifestEntry) => [number, number][];
};

export { ConnectionLost };

type Chunk = { path: string; offset: number; len: number };

/**
 * Send every file from the receiver's verified offset, in 1 MiB chunks each with its CRC-32, pipelined up to a
 * window of unacknowledged chunks; a chunk the receiver reports bad is sent again.
 */
export async function sendFiles(o: SendOptions): Promise<SendStats> {
  const sending = new Sending(o);
  try {
    for (const e of o.manifest) {
      if (e.kind !== 'file' || !e.size) continue;
      if (o.pieces) await sending.sendPieces(e, o.pieces(e));
      else await sending.sendFrom(e, e.size, o.verified[e.path] ?? 0);
    }
    await sending.finish();
    return sending.stats;
  } finally {
    sending.close();
  }
}

/** One transfer's sending side: its chunks in flight, the receiver's answers, the buffers its reads reuse. */
class Sending {
  readonly stats: SendStats = { bytesSent: 0, resumedBytes: 0, resent: 0 };
  private readonly o: SendOptions;
  private readonly sock: Socket;
  private readonly pending = new Map<number, Chunk>();
  private readonly badQueue: Chunk[] = [];
  private readonly window: number;
  private readonly idleMs: number;
  private nextId = 1;
  private broken: Error | undefined;
  private done = false;
  private wake: (() => void) | undefined;
  private lineBuf = '';
  private readonly files: SourceFiles;
  /**
   * Read buffers are reused once the socket has handed their bytes to the kernel (fresh 1 MiB buffers cost page
   * faults); a chunk the receiver rejects is read again from the file, so unacknowledged chunks keep no data.
   */
  private readonly free: Buffer[] = Array.from({ length: 8 }, () => Buffer.allocUnsafe(CHUNK));

  constructor(o: SendOptions) {
    this.o = o;
    this.sock = o.sock;
    this.window = o.window ?? 32;
    this.idleMs = o.idleMs ?? limits.streamIdleMs;
    this.listen();
    this.files = new SourceFiles(o.sourceDir);
  }

  private listen(): void {
    const sock = this.sock;
    sock.on('data', (d: Buffer) => {
      this.lineBuf += d.toString();
      let nl: number;
      while ((nl = this.lineBuf.indexOf('\n')) >= 0) {
        const line = this.lineBuf.slice(0, nl);
        this.lineBuf = this.lineBuf.slice(nl + 1);
        this.answer(line);
      }
      this.signal();
    });
    sock.on('error', (e) => {
      this.broken ??= new ConnectionLost(e.message);
      this.signal();
    });
    sock.on('close', () => {
      if (!this.done) this.broken ??= new ConnectionLost('connection closed');
      this.signal();
    });
    sock.on('drain', () => this.signal());
    sock.setTimeout(this.idleMs, () => {
      this.broken ??= new ConnectionLost(`nothing moved on the data connection for ${this.idleMs} ms`);
      sock.destroy();
      this.signal();
    });
    sock.resume();
  }

  /**
   * One line of the receiver's: `ok ID`, `bad ID` (sent again), `done`, or `error WHY`; `wait` (it finishes: only
   * the connection moving, which its idle timeout sees) and any other are nothing.
   */
  private answer(line: string): void {
    const [word, arg] = line.split(' ', 2);
    if (word === 'ok') this.pending.delete(Number(arg));
    else if (word === 'bad') {
      const c = this.pending.get(Number(arg));
      this.pending.delete(Number(arg));
      if (c) this.badQueue.push(c);
    } else if (word === 'done') this.done = true;
    else if (word === 'error') this.broken = new Error(`receiver refused: ${line.slice(6)}`);
  }

  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private wait(): Promise<void> {
    return new Promise<void>((r) => (this.wake = r));
  }

  private check(): void {
    if (this.broken) throw this.broken;
  }

  /** Held back by our own limits, not by the peer: say so now and then, so its idle timeout does not close us. */
  private async throttled(len: number): Promise<void> {
    const beat = setInterval(() => this.sock.write(encodeHeader({ t: 'wait' })), this.idleMs / 3);
    try {
      await this.o.throttle(len);
    } finally {
      clearInterval(beat);
    }
  }

  private async sendChunk({ path, offset, len }: Chunk): Promise<void> {
    const sock = this.sock;
    while (this.pending.size >= this.window || this.free.length === 0) {
      this.check();
      await this.wait();
    }
    const buf = this.free.pop()!;
    const data = buf.subarray(0, len);
    this.files.read(path, data, offset);
    const crc32 = chunkDigest(data);
    this.o.tamper?.(path, offset, data);
    const id = this.nextId++;
    this.pending.set(id, { path, offset, len });
    await this.throttled(len);
    sock.cork();
    sock.write(encodeHeader(chunkHeader({ id, path, offset, len, crc32 })));
    const flushed = sock.write(data, () => {
      this.free.push(buf);
      this.signal();
    });
    sock.uncork();
    this.check();
    if (!flushed) await this.wait();
    this.stats.bytesSent += len;
    this.o.onBytes(len);
  }

  /** Send the oldest chunk the receiver reported bad again; false when none is waiting. */
  private async resendBad(): Promise<boolean> {
    const c = this.badQueue.shift();
    if (!c) return false;
    this.stats.resent++;
    await this.sendChunk(c);
    return true;
  }

  /** A chunk and then every chunk reported bad so far. */
  private async sendThenResend(c: Chunk): Promise<void> {
    await this.sendChunk(c);
    while (await this.resendBad());
  }

  /** An update pass's ranges [start, end) of a file, in pieces of at most a chunk. */
  async sendPieces(e: ManifestEntry, ranges: [number, number][]): Promise<void> {
    for (const [start, end] of ranges)
      for (let off = start; off < end; off += CHUNK)
        await this.sendThenResend({ path: e.path, offset: off, len: Math.min(CHUNK, end - off) });
  }

  /** A whole file from the chunk that holds its first unverified byte. */
  async sendFrom(e: ManifestEntry, size: number, from: number): Promise<void> {
    this.stats.resumedBytes += from;
    if (from > 0) this.o.onBytes(from);
    else this.o.onFileStart?.(e.path);
    for (let off = from - (from % CHUNK); off < size; off += CHUNK) {
      // A chunk the target verified whole is not sent again: the last one of a file verified to its end is shorter.
      const end = this.o.finishesVerified ? Math.min(off + CHUNK, size) : off + CHUNK;
      if (end <= from) continue;
      await this.sendThenResend({ path: e.path, offset: off, len: Math.min(CHUNK, size - off) });
    }
  }

  /** Every chunk acknowledged (the bad ones sent again), then `end`, then the receiver's `done`. */
  async finish(): Promise<void> {
    while (this.pending.size > 0 || this.badQueue.length > 0) {
      this.check();
      if (!(await this.resendBad())) await this.wait();
    }
    this.check();
    if (!this.sock.write(encodeHeader({ t: 'end' }))) await this.wait();
    while (!this.done) {
      this.check();
      await this.wait();
    }
  }

  close(): void {
    this.files.close();
    this.sock.destroy();
  }
}

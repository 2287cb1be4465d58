import { CHUNK, headerIntact, MAX_HEADER, type FrameHeader } from './wire.ts';

/** A chunk frame as read: its header and payload. `release` hands the payload's buffer back for reuse. */
export type ChunkFrame = {
  header: Extract<FrameHeader, { t: 'chunk' }>;
  payload: Buffer;
  release: () => void;
};

export type FrameSink = {
  chunk: (f: ChunkFrame) => void;
  end: () => void;
  /** A framing error: the connection cannot go on. */
  error: (why: string) => void;
};

const FRAME_MAX = 4 + MAX_HEADER + CHUNK;
/** Read size while a frame's header is not known yet. */
const PROBE = 64 * 1024;

/**
 * Frames ([u32 BE header length][header JSON][payload]) read straight off the socket into pooled buffers that each
 * hold one whole frame (the socket's `onread` buffer). Reads stop at the end of the frame once its size is known,
 * so a full chunk is never copied; the few bytes read past a small frame move to the next buffer. The payload is
 * handed out in place and its buffer comes back with `release` (after the disk write).
 *
 * Node asks for the next read's buffer right after each callback, so `cur` only ever changes inside received():
 * every complete frame is handed out there (taking a fresh buffer if the pool is empty), and backpressure is
 * applied by pausing the socket while `maxOutstanding` payloads are out, never by leaving frames unread.
 *
 * Compared with 'data' events (a fresh 64 KiB buffer per read, so a full mark-compact every few tens of MB of
 * external memory in a process with a real heap), the receiver allocates nothing per byte.
 */
export class FrameReader {
  private readonly pool: Buffer[] = [];
  private cur: Buffer;
  private fill = 0;
  /** End of the current frame in `cur`, once its header was read. */
  private frameEnd = 0;
  private header: FrameHeader | undefined;
  private stopped = false;
  private outstanding = 0;
  private paused = false;
  private readonly sink: FrameSink;
  private readonly maxOutstanding: number;
  private readonly resumeSocket: () => void;

  /** `resumeSocket`: called when reading may go on after received() returned false. */
  constructor(maxOutstanding: number, sink: FrameSink, resumeSocket: () => void) {
    this.maxOutstanding = maxOutstanding;
    this.sink = sink;
    this.resumeSocket = resumeSocket;
    this.cur = this.take();
  }

  /** For the socket's `onread.buffer`: where the next read goes. */
  nextBuffer(): Buffer {
    const end = this.header ? this.frameEnd : Math.min(FRAME_MAX, this.fill + PROBE);
    return this.cur.subarray(this.fill, end);
  }

  /**
   * For the socket's `onread.callback`: `n` bytes arrived at the position nextBuffer() gave. Returns false to
   * pause the socket (too many payloads out); `resumeSocket` is called when enough came back.
   */
  received(n: number): boolean {
    this.fill += n;
    while (!this.stopped) {
      if (!this.header) {
        if (this.fill < 4) break;
        const hl = this.cur.readUInt32BE(0);
        if (hl === 0 || hl > MAX_HEADER) return this.fail(`frame header of ${hl} bytes`);
        if (this.fill < 4 + hl) break;
        let parsed: unknown;
        try {
          parsed = JSON.parse(this.cur.toString('utf8', 4, 4 + hl));
        } catch {
          return this.fail('frame header is not JSON');
        }
        // A peer's bytes: `null` or a number parse too, and a field read off them would throw in the socket's read.
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          return this.fail('frame header is not a JSON object');
        const h = parsed as FrameHeader;
        if (h.t === 'end') {
          this.stopped = true;
          this.sink.end();
          return true;
        }
        if (h.t === 'wait') {
          this.cur.copy(this.cur, 0, 4 + hl, this.fill);
          this.fill -= 4 + hl;
          continue;
        }
        if (h.t !== 'chunk' || !Number.isInteger(h.len) || h.len < 1 || h.len > CHUNK)
          return this.fail('bad frame header');
        if (!headerIntact(h)) return this.fail('a chunk header damaged in flight (its hcrc does not match)');
        this.header = h;
        this.frameEnd = 4 + hl + h.len;
      }
      if (this.fill < this.frameEnd) break;
      this.handOut(this.header as Extract<FrameHeader, { t: 'chunk' }>);
    }
    if (this.outstanding >= this.maxOutstanding && !this.stopped) {
      this.paused = true;
      return false;
    }
    return true;
  }

  stop(): void {
    this.stopped = true;
  }

  private handOut(header: Extract<FrameHeader, { t: 'chunk' }>): void {
    const buf = this.cur;
    const payload = buf.subarray(this.frameEnd - header.len, this.frameEnd);
    const next = this.take();
    buf.copy(next, 0, this.frameEnd, this.fill);
    this.fill -= this.frameEnd;
    this.cur = next;
    this.header = undefined;
    this.outstanding++;
    let released = false;
    this.sink.chunk({
      header,
      payload,
      release: () => {
        if (released) return;
        released = true;
        this.outstanding--;
        this.pool.push(buf);
        if (this.paused && this.outstanding < this.maxOutstanding) {
          this.paused = false;
          this.resumeSocket();
        }
      },
    });
  }

  private take(): Buffer {
    return this.pool.pop() ?? Buffer.allocUnsafeSlow(FRAME_MAX);
  }

  private fail(why: string): boolean {
    this.stopped = true;
    this.sink.error(why);
    return false;
  }
}

import type { Socket } from 'node:net';
import { limits } from '@haul/bus';
import { ConnectionLost } from './data-server.ts';
import type { ManifestEntry } from './manifest.ts';
import { SourceFiles } from './source-files.ts';
import { CHUNK, chunkDigest, encodeHeader } from './wire.ts';

export type SendStats = { bytesSent: number; resumedBytes: number; resent: number };
export type SendOptions = {
  sourceDir: string;
  manifest: ManifestEntry[];
  /** The receiver's connection, its token line (and certificate) already checked (see DataServer). */
  sock: Socket;
  /** Bytes already verified per path (the offer reply): sending resumes there. */
  verified: Record<string, number | undefined>;
  throttle: (bytes: number) => Promise<void>;
  onBytes: (n: number) => void;
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

/**
 * Send every file from the receiver's verified offset, in 1 MiB chunks each with its CRC-32, pipelined up to a
 * window of unacknowledged chunks; a chunk the receiver reports bad is sent again.
 */
export async function sendFiles(o: SendOptions): Promise<SendStats> {
  const sock = o.sock;
  const stats: SendStats = { bytesSent: 0, resumedBytes: 0, resent: 0 };
  const pending = new Map<number, { path: string; offset: number; len: number }>();
  const window = o.window ?? 32;
  let nextId = 1;
  let broken: Error | undefined;
  let done = false;
  let wake: (() => void) | undefined;
  const signal = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const badQueue: { path: string; offset: number; len: number }[] = [];
  let lineBuf = '';
  sock.on('data', (d: Buffer) => {
    lineBuf += d.toString();
    let nl: number;
    while ((nl = lineBuf.indexOf('\n')) >= 0) {
      const line = lineBuf.slice(0, nl);
      lineBuf = lineBuf.slice(nl + 1);
      const [word, arg] = line.split(' ', 2);
      if (word === 'ok') pending.delete(Number(arg));
      else if (word === 'bad') {
        const c = pending.get(Number(arg));
        pending.delete(Number(arg));
        if (c) badQueue.push(c);
      } else if (word === 'done') done = true;
      else if (word === 'error') broken = new Error(`receiver refused: ${line.slice(6)}`);
    }
    signal();
  });
  sock.on('error', (e) => {
    broken ??= new ConnectionLost(e.message);
    signal();
  });
  sock.on('close', () => {
    if (!done) broken ??= new ConnectionLost('connection closed');
    signal();
  });
  sock.on('drain', signal);
  const idleMs = o.idleMs ?? limits.streamIdleMs;
  sock.setTimeout(idleMs, () => {
    broken ??= new ConnectionLost(`nothing moved on the data connection for ${idleMs} ms`);
    sock.destroy();
    signal();
  });
  sock.resume();
  const wait = () => new Promise<void>((r) => (wake = r));
  const check = () => {
    if (broken) throw broken;
  };
  const write = async (buf: Buffer) => {
    check();
    if (!sock.write(buf)) await wait();
  };

  // Held back by our own limits, not by the peer: say so now and then, so its idle timeout does not close us.
  const throttled = async (len: number) => {
    const beat = setInterval(() => sock.write(encodeHeader({ t: 'wait' })), idleMs / 3);
    try {
      await o.throttle(len);
    } finally {
      clearInterval(beat);
    }
  };

  const files = new SourceFiles(o.sourceDir);
  // Read buffers are reused once the socket has handed their bytes to the kernel (fresh 1 MiB buffers cost page
  // faults); a chunk the receiver rejects is read again from the file, so unacknowledged chunks keep no data.
  const free: Buffer[] = Array.from({ length: 8 }, () => Buffer.allocUnsafe(CHUNK));
  const sendChunk = async (path: string, offset: number, len: number) => {
    while (pending.size >= window || free.length === 0) {
      check();
      await wait();
    }
    const buf = free.pop()!;
    const data = buf.subarray(0, len);
    files.read(path, data, offset);
    const crc32 = chunkDigest(data);
    o.tamper?.(path, offset, data);
    const id = nextId++;
    pending.set(id, { path, offset, len });
    await throttled(len);
    sock.cork();
    sock.write(encodeHeader({ t: 'chunk', id, path, offset, len, crc32 }));
    const flushed = sock.write(data, () => {
      free.push(buf);
      signal();
    });
    sock.uncork();
    check();
    if (!flushed) await wait();
    stats.bytesSent += len;
    o.onBytes(len);
  };
  const resendBad = async () => {
    while (badQueue.length) {
      const c = badQueue.shift()!;
      stats.resent++;
      await sendChunk(c.path, c.offset, c.len);
    }
  };
  try {
    for (const e of o.manifest) {
      if (e.kind !== 'file' || !e.size) continue;
      if (o.pieces) {
        for (const [start, end] of o.pieces(e))
          for (let off = start; off < end; off += CHUNK) {
            await sendChunk(e.path, off, Math.min(CHUNK, end - off));
            await resendBad();
          }
        continue;
      }
      const from = o.verified[e.path] ?? 0;
      stats.resumedBytes += from;
      if (from > 0) o.onBytes(from);
      for (let off = from - (from % CHUNK); off < e.size; off += CHUNK) {
        if (off + CHUNK <= from) continue;
        await sendChunk(e.path, off, Math.min(CHUNK, e.size - off));
        await resendBad();
      }
    }
    while (pending.size > 0 || badQueue.length > 0) {
      check();
      const c = badQueue.shift();
      if (c) {
        stats.resent++;
        await sendChunk(c.path, c.offset, c.len);
      } else await wait();
    }
    await write(encodeHeader({ t: 'end' }));
    while (!done) {
      check();
      await wait();
    }
    return stats;
  } finally {
    files.close();
    sock.destroy();
  }
}

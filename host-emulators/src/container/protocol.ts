import { net } from '../lib/lazy.ts';
import type { Socket } from 'node:net';

/** Requests the emulated criu and vzctl send to a running CT over its local socket (one JSON line each way). */
export type CtRequest =
  | { op: 'status' }
  | { op: 'freeze' }
  | { op: 'thaw' }
  | { op: 'checksum' }
  | { op: 'state' }
  | { op: 'exit' }
  /** criu's ptrace seize, held for as long as the connection that asked it stays open (seizeCt). */
  | { op: 'seize' }
  | { op: 'dump'; dir: string; pid: number; incremental: boolean; track: boolean; leaveFrozen: boolean };

export type CtStatus = {
  pid: number;
  frozen: boolean;
  tracking: boolean;
  pages: number;
  dirtied: number;
  diskWrites: number;
};
export type DumpReply = {
  pagesScanned: number;
  pagesWritten: number;
  pagesSkipped: number;
  bytes: number;
  /** How long the CT was frozen: the whole dump for a final dump, the collection of the pages for a pre-dump. */
  frozenUs: number;
  /** Collecting the pages (and, for a final dump, writing them: criu does both with the tasks frozen). */
  memdumpUs: number;
  /** Writing the pages to the images (after the thaw, for a pre-dump). */
  memwriteUs: number;
};
export type CtConfig = {
  ctid: string;
  memoryMb: number;
  dirtyPagesPerSec: number;
  diskWritesPerSec: number;
  seed: number;
  /** Base image of each disk: the CT writes into the top delta of the device built on it. */
  diskBases: string[];
  diskBlocks: number;
  /** How long written blocks stay in the page cache before writeback (0: only a sync or umount writes them). */
  writebackMs: number;
};
export type CtCoreImage = {
  config: CtConfig;
  rng: [number, number, number, number];
  memSha256: string;
  dirtied: number;
  diskWrites: number;
};

/** Send one request to a CT and wait for its one-line reply. */
export function ctRequest<T>(socket: string, req: CtRequest, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const c = net().connect(socket);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`CT at ${socket} did not answer ${req.op} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        c.end();
        let reply: { ok: boolean; error?: string; value?: T };
        try {
          reply = JSON.parse(buf.slice(0, nl)) as typeof reply;
        } catch {
          return reject(new Error(`CT at ${socket} answered ${req.op} with no JSON: ${buf.slice(0, 200)}`));
        }
        if (reply.ok) resolve(reply.value as T);
        else reject(new Error(reply.error ?? 'CT error'));
      }
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // Closed without a whole answer (a CT ending as it was asked): no need to wait out the timeout.
    c.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`CT at ${socket} closed the connection without answering ${req.op}`));
    });
  });
}

/**
 * Seize the CT's tasks as criu's ptrace does (criu/seize.c): they stay stopped while the returned connection is open,
 * and run again when it closes without a thaw or an exit (the kernel lets a dead tracer's tasks go). The caller keeps
 * it open for as long as it lives: a criu that is killed closes it.
 */
export function seizeCt(socket: string, timeoutMs = 60_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const c = net().connect(socket);
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`CT at ${socket} did not answer seize within ${timeoutMs} ms`));
    }, timeoutMs);
    c.on('connect', () => c.write(JSON.stringify({ op: 'seize' }) + '\n'));
    c.once('data', () => {
      clearTimeout(timer);
      c.unref();
      resolve(c);
    });
    c.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

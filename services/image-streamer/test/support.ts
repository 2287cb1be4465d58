import { readdirSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { until as waitUntil } from '@haul/test';
import {
  createImageStreamer,
  type ImageStreamer,
  type StreamerConfig,
  type StreamerDeps,
} from '../src/app.ts';
import type { TlsMaterial } from '../src/tls.ts';

/**
 * The image streamer of `node` in a test's process: listening on loopback, writing only below `<dir>/<node>`, with the
 * settings `cfg` gives (retries and progress period at least).
 */
export function streamerOf(
  deps: Omit<StreamerDeps, 'cfg'>,
  node: string,
  dir: string,
  cfg: Omit<StreamerConfig, 'node' | 'listenHost' | 'allowedRoots'>,
): ImageStreamer {
  return createImageStreamer({
    ...deps,
    cfg: { node, listenHost: '127.0.0.1', allowedRoots: [join(dir, node)], ...cfg },
  });
}

/** File descriptors this process has open (sockets included). */
export const openFds = (): number => readdirSync('/proc/self/fd').length;

/**
 * The descriptors this process has open, each as `<fd> <what it is>` (a path, `socket:[inode]`): a descriptor that
 * was closed and its number reused for something else counts as another. The listing's own descriptor is left out.
 */
export function openDescriptors(): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.add(`${fd} ${readlinkSync(`/proc/self/fd/${fd}`)}`);
    } catch {
      // closed since the listing (the listing's own)
    }
  }
  return out;
}

/** Resolves when the socket is closed (at once if it already is). */
export const closed = (s: Socket): Promise<void> =>
  s.closed ? Promise.resolve() : new Promise((r) => s.once('close', () => r()));

/** A plain TCP client, connected. */
export function tcpClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** A TLS client presenting `m` (or no certificate), connected; it does not check the server's name. */
export function tlsClient(port: number, m: Partial<TlsMaterial> & { ca: Buffer }): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...m, checkServerIdentity: () => undefined }, () =>
      resolve(s),
    );
    s.once('error', reject);
  });
}

/**
 * Wait until `cond` holds, looking every 5 ms for at most 10 s: for state another party's close handler updates (the
 * server side of a socket whose client side already saw its close), well within the tests' own 30 s.
 */
export const until = (cond: () => boolean, what: string, ms = 10_000): Promise<void> =>
  waitUntil(cond, what, ms, 5);

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { sendFiles } from '../src/sender.ts';
import { SourceChanged } from '../src/source-files.ts';
import { CHUNK } from '../src/wire.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-sender-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A connected pair on loopback: the sender's end, and a peer that reads everything and never answers. */
async function pair(): Promise<{ sock: Socket; peer: Socket; close: () => void }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const peerP = new Promise<Socket>((r) => server.once('connection', r));
  const sock = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const peer = await peerP;
  peer.resume();
  return { sock, peer, close: () => (peer.destroy(), server.close()) };
}

describe('sendFiles', () => {
  it(
    'fails with SourceChanged when a file is shorter than its manifest says, instead of sending stale bytes',
    { timeout: 30_000 },
    async () => {
      writeFileSync(join(dir, 'a.img'), Buffer.alloc(100, 7));
      const { sock, close } = await pair();
      try {
        await assert.rejects(
          sendFiles({
            sourceDir: dir,
            manifest: [{ path: 'a.img', kind: 'file', size: 2 * CHUNK }],
            sock,
            verified: {},
            throttle: () => Promise.resolve(),
            onBytes: () => {},
          }),
          (err: unknown) => err instanceof SourceChanged && /a\.img ends at byte 100/.test(err.message),
        );
      } finally {
        close();
      }
    },
  );
});

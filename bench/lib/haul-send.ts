// haul, sending end: one transfer through the image streamer's sender, negotiated over NATS with the receiving
// streamer (a long-lived process, as on a node). The bench runs this from an esbuild bundle, as haul's programs run.
// Prints "ready" once connected to NATS; on a line on stdin runs the transfer (manifest, offer, TCP stream,
// per-chunk CRC-32, the receiver's "done"), prints "DONE <ns>" (process.hrtime, CLOCK_MONOTONIC); exits when stdin
// closes.
import { connectBus, createLogger, insecureTrust } from '@haul/bus';
import { createValidators } from '@haul/schemas';
import { createImageStreamer } from '../../services/image-streamer/src/app.ts';

const [url, src, dst] = process.argv.slice(2) as [string, string, string];
const go = new Promise((resolve) => process.stdin.once('data', resolve));
const quit = new Promise((resolve) => process.stdin.once('end', resolve));
const nc = await connectBus({ servers: url, name: 'bench-sender' });
const log = createLogger('bench', 'node-a', { HAUL_LOG_LEVEL: 'warn' });
const s = createImageStreamer({
  nc,
  validators: createValidators(),
  log,
  cfg: { node: 'node-a', listenHost: '127.0.0.1', allowedRoots: [], maxRetries: 3, progressEveryMs: 1000 },
  // The bench times the data path; its transfer runs without a command, and nothing reads its progress events.
  trust: insecureTrust(),
});
process.stderr.write('ready\n');
await go;
await s.transfer(
  'bench-0001',
  `bench-0001:streamImages:${Date.now()}:1`,
  { toNode: 'node-b', sourceDir: src, targetDir: dst, priority: 'final' },
  log,
);
process.stderr.write(`DONE ${process.hrtime.bigint()}\n`);
await quit;
await nc.close();

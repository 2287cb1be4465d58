// (c) haul: one transfer through the image streamer's sender (negotiated over NATS with the receiving streamer).
import { connectBus, createLogger } from '@haul/bus';
import { createValidators } from '@haul/schemas';
import { createImageStreamer } from '../../services/image-streamer/src/app.ts';
const [url, src, dst] = process.argv.slice(2) as [string, string, string];
const nc = await connectBus({ servers: url, name: 'bench-sender' });
const log = createLogger('bench', 'node-a', { HAUL_LOG_LEVEL: 'warn' });
const s = createImageStreamer({
  nc,
  validators: createValidators(),
  log,
  cfg: { node: 'node-a', listenHost: '127.0.0.1', allowedRoots: [], maxRetries: 3, progressEveryMs: 1000 },
});
// Ready: the bench clears the previous method's output, then says "go" on stdin; only the transfer is timed.
process.stderr.write('listening\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.destroy();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await s.transfer(
  'bench-0001',
  `bench-0001:streamImages:${Date.now()}:1`,
  { toNode: 'node-b', sourceDir: src, targetDir: dst, priority: 'final' },
  log,
);
const cpu = process.cpuUsage(cpu0);
process.stderr.write(`TRANSFER ${(performance.now() - t0) / 1000} ${(cpu.user + cpu.system) / 1e6}\n`);
await nc.close();

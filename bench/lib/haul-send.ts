// haul, sending end: one transfer through the image streamer's sender, negotiated over NATS with the receiving
// streamer (a long-lived process, as on a node). The bench runs this from an esbuild bundle, as haul's programs run.
// Prints "ready" once connected to NATS; on a line on stdin runs the transfer (manifest, offer, TCP stream,
// per-chunk CRC-32, the receiver's "done"), prints "DONE <ns>" (process.hrtime, CLOCK_MONOTONIC); exits when stdin
// closes. Optional 4th and 5th arguments name the sending and receiving nodes (node-a, node-b); with HAUL_TLS_CERT_FILE,
// HAUL_TLS_KEY_FILE and HAUL_TLS_CA_FILE set the data connection is mutual TLS, as a streamer's would be.
import { connectBus, createEventLog, createLogger, eventFactory, insecureTrust } from '@haul/bus';
import { createValidators } from '@haul/schemas';
import { createImageStreamer, type StreamerConfig } from '../../services/image-streamer/src/app.ts';
import { tlsFromEnv } from '../../services/image-streamer/src/tls.ts';

const [url, src, dst, from = 'node-a', to = 'node-b'] = process.argv.slice(2) as [string, string, string];
const tls = tlsFromEnv({ HAUL_INSECURE: '1', ...process.env });
const go = new Promise((resolve) => process.stdin.once('data', resolve));
const quit = new Promise((resolve) => process.stdin.once('end', resolve));
const nc = await connectBus({ servers: url, name: 'bench-sender' });
const log = createLogger('bench', from, { HAUL_LOG_LEVEL: 'warn' });
const cfg: StreamerConfig = {
  node: from,
  listenHost: '127.0.0.1',
  allowedRoots: [],
  maxRetries: 3,
  progressEveryMs: 1000,
  ...(tls ? { tls } : {}),
};
const s = createImageStreamer({
  nc,
  validators: createValidators(),
  log,
  cfg,
  // The bench times the data path; its transfer runs without a command, and nothing reads its progress events.
  trust: insecureTrust(),
});
// Its data listener and its registration in haul-streamers: the receiver connects only to a registered address.
await s.start();
// A receiver takes only a transfer its migration's log intends: the bench appends the intent the coordinator would
// (unsigned, as everything of this insecure cluster), before it says it is ready (outside the timed transfer).
const commandId = `bench-0001:streamImages:${Date.now()}:1`;
const args = { toNode: to, sourceDir: src, targetDir: dst, priority: 'final' } as const;
const intent = eventFactory({ service: 'coordinator', node: 'coordinator' })(
  'bench-0001',
  'StepIntended',
  {
    commandId,
    migrationId: 'bench-0001',
    node: from,
    executor: 'streamer',
    attempt: 1,
    step: 'streamImages',
    args,
    timeoutMs: 600_000,
  },
  `${commandId}:intent`,
);
await createEventLog(nc, createValidators(), insecureTrust()).append(intent);
process.stderr.write('ready\n');
await go;
await s.transfer('bench-0001', commandId, args, log);
process.stderr.write(`DONE ${process.hrtime.bigint()}\n`);
await quit;
await s.stop();
await nc.close();

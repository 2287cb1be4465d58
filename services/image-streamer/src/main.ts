import {
  awaitTopologyOrExit,
  connectBus,
  createLoggerWith,
  exitOnUncaught,
  limits,
  metricsConfigOf,
  serviceConnection,
  serviceSettings,
  serviceTrust,
  stopOnSignals,
  type ServiceSettings,
} from '@haul/bus';
import { createValidators, type ImageStreamerConfig } from '@haul/schemas';
import { createImageStreamer, type StreamerConfig } from './app.ts';
import { parsePortRange, PortRangeExhaustedError, type PortRange } from './data-server.ts';
import { TlsConfigError, tlsOf, type TlsMaterial } from './tls.ts';

const start: ServiceSettings<ImageStreamerConfig> = serviceSettings({
  schema: 'imageStreamerConfig',
  binary: 'haul-image-streamer',
  summary:
    'haul image streamer: moves dump images and local disks between nodes (negotiated over NATS, bytes over TCP).',
});
const s = start.settings;

function dataTls(): TlsMaterial | undefined {
  try {
    return tlsOf(s);
  } catch (err) {
    if (!(err instanceof TlsConfigError)) throw err;
    start.fail(err.field, err.message);
  }
}
function dataPorts(): PortRange | undefined {
  if (s.data.ports === undefined) return undefined;
  try {
    return parsePortRange(s.data.ports);
  } catch (err) {
    start.fail('data.ports', (err as Error).message);
  }
}
const tls = dataTls();
const ports = dataPorts();
const cfg: StreamerConfig = {
  node: s.node,
  listenHost: s.data.listenHost,
  allowedRoots: s.roots,
  maxRetries: s.data.maxRetries,
  progressEveryMs: limits.progressEveryMs,
  ...(tls ? { tls } : {}),
  ...(ports ? { dataPorts: ports } : {}),
  ...(s.data.advertise ? { advertiseHost: s.data.advertise } : {}),
  ...(s.data.limitMBps ? { nodeLimitMBps: s.data.limitMBps } : {}),
};
const log = createLoggerWith('image-streamer', s.node, s.log);
exitOnUncaught(log);
const trust = serviceTrust(start, { role: 'streamer', node: s.node }, log);
const bus = serviceConnection(start, `image-streamer@${s.node}`);
start.checked();

if (!tls)
  log.warn(
    'data connections are plaintext (insecure or data.plaintext): any holder of a token can take a transfer',
  );
const validators = createValidators();
const nc = await connectBus(bus);
await awaitTopologyOrExit(nc, log, s.topologyWaitMs);
const streamer = createImageStreamer({
  nc,
  validators,
  cfg,
  log,
  metrics: metricsConfigOf(s.metrics),
  trust,
});
try {
  await streamer.start();
} catch (err) {
  if (!(err instanceof PortRangeExhaustedError)) throw err;
  // Not a bad setting for ever: whatever holds the ports may let go, so the supervisor tries again (exit 1).
  log.fatal({ code: err.code, ports: `${err.range.from}-${err.range.to}` }, err.message);
  process.exit(1);
}
stopOnSignals(log, streamer, nc);

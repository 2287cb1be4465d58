import {
  awaitTopologyOrExit,
  busConfigFromEnv,
  connectBus,
  createLogger,
  exitOnUncaught,
  limits,
  metricsConfigOrExit,
  metricsEnvHelp,
  stopOnSignals,
  trustFromEnvOrExit,
} from '@haul/bus';
import { createValidators } from '@haul/schemas';
import { createImageStreamer, type StreamerConfig } from './app.ts';
import { TlsConfigError, tlsFromEnv, type TlsMaterial } from './tls.ts';

const help = `haul image streamer: moves dump images and local disks between nodes (negotiated over NATS, bytes over TCP).

Environment:
  HAUL_NODE                this node's name (required)
  HAUL_NATS_URL            NATS servers (default nats://127.0.0.1:4222); credentials as for the node agent
  HAUL_STREAM_LISTEN_HOST  address this node's data listener binds to (receivers connect to it; default 127.0.0.1)
  HAUL_STREAM_PORT         port of that listener (default 0: picked at start); registered in haul-streamers
  HAUL_STREAM_ADVERTISE    address receiving streamers connect to (default: the listen address)
  HAUL_TLS_CERT_FILE       this streamer's certificate (CN or subjectAltName streamer@<node>), PEM
  HAUL_TLS_KEY_FILE        its private key, PEM
  HAUL_TLS_CA_FILE         the cluster's CA, PEM: data connections are mutual TLS with these three files
  HAUL_INSECURE=1          plaintext data connections (debugging only; a warning at every start)
  HAUL_STREAM_PLAINTEXT=1  plaintext data connections only, signatures kept (test worlds without certificates)
  HAUL_STREAM_ROOTS        colon-separated folders the receiving side may write below (required)
  HAUL_NKEY_SEED_FILE      this streamer's nkey seed (streamer@<node>.nk): signs the events it appends
  HAUL_IDENTITIES_FILE     the cluster's identities.json: commands run only when a coordinator signed them
  HAUL_INSECURE=1          debugging only: sign and verify nothing (warns at every start)
  HAUL_STREAM_LIMIT_MBPS   node-wide bandwidth cap in MB/s (optional)
  HAUL_TOPOLOGY_WAIT_MS    how long to wait at start for the coordinator to create the streams and buckets
                           (default ${limits.topologyWaitMs}); this streamer never creates or changes them
${metricsEnvHelp}`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(help);
  process.exit(0);
}
const node = process.env['HAUL_NODE'];
const roots = process.env['HAUL_STREAM_ROOTS'];
if (!node || !roots) {
  console.error('HAUL_NODE and HAUL_STREAM_ROOTS are required (see --help)');
  process.exit(2);
}
let tls: TlsMaterial | undefined;
try {
  tls = tlsFromEnv(process.env);
} catch (err) {
  if (!(err instanceof TlsConfigError)) throw err;
  console.error(`${err.message} (see --help)`);
  process.exit(2);
}
const cfg: StreamerConfig = {
  node,
  listenHost: process.env['HAUL_STREAM_LISTEN_HOST'] ?? '127.0.0.1',
  allowedRoots: roots.split(':').filter(Boolean),
  maxRetries: Number(process.env['HAUL_STREAM_MAX_RETRIES'] ?? 10),
  progressEveryMs: limits.progressEveryMs,
};
if (tls) cfg.tls = tls;
const port = process.env['HAUL_STREAM_PORT'];
if (port) cfg.dataPort = Number(port);
const advertise = process.env['HAUL_STREAM_ADVERTISE'];
if (advertise) cfg.advertiseHost = advertise;
const limit = process.env['HAUL_STREAM_LIMIT_MBPS'];
if (limit) cfg.nodeLimitMBps = Number(limit);
const log = createLogger('image-streamer', node);
exitOnUncaught(log);
const metrics = metricsConfigOrExit(log);
if (!tls)
  log.warn(
    'data connections are plaintext (HAUL_INSECURE=1 or HAUL_STREAM_PLAINTEXT=1): any holder of a token can take a transfer',
  );
const trust = trustFromEnvOrExit({ role: 'streamer', node }, log);
const validators = createValidators();
const nc = await connectBus(busConfigFromEnv(`image-streamer@${node}`));
await awaitTopologyOrExit(nc, log, Number(process.env['HAUL_TOPOLOGY_WAIT_MS'] ?? limits.topologyWaitMs));
const streamer = createImageStreamer({ nc, validators, cfg, log, metrics, trust });
await streamer.start();
stopOnSignals(log, streamer, nc);

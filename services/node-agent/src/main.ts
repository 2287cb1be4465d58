import { mkdirSync, readFileSync } from 'node:fs';
import {
  busConfigFromEnv,
  connectBus,
  awaitTopologyOrExit,
  createLogger,
  limits,
  maxFrozenLeaseMs,
  exitOnUncaught,
  metricsConfigOrExit,
  metricsEnvHelp,
  stopOnSignals,
  trustFromEnvOrExit,
} from '@haul/bus';
import { createValidators } from '@haul/schemas';
import { createNodeAgent } from './app.ts';
import type { AgentConfig } from './context.ts';
import { hostBoundsFromEnv, SettingError } from './settings.ts';

const help = `haul node agent: runs the host steps of migrations on this node (vzctl, criu, ploop through execa).

Environment:
  HAUL_NODE            this node's name (required), e.g. node-a
  HAUL_NATS_URL        NATS servers, comma-separated (default nats://127.0.0.1:4222)
  HAUL_NKEY_SEED_FILE  this service's identity: the nkey seed file from haul init-cluster (agent@<node>.nk)
  HAUL_TLS_CA_FILE     the cluster CA (ca.pem): TLS to nats-server, its certificate checked against it
  HAUL_INSECURE=1      neither (debugging only; warns at every start)
  HAUL_NATS_CREDS_FILE JSON file with {"user","pass"} or {"token"} (or HAUL_NATS_USER/PASS/TOKEN)
  HAUL_NKEY_SEED_FILE  this agent's nkey seed (agent@<node>.nk): signs the events it appends
  HAUL_IDENTITIES_FILE the cluster's identities.json: commands run only when a coordinator signed them
  HAUL_INSECURE=1      debugging only: sign and verify nothing (warns at every start)
  HAUL_HOST_ROOT       prefix of /etc/vz, /var/run/ve and /proc/sys/kernel/random/boot_id ('' on a real host; an
                       emulated node's root otherwise)
  HAUL_IMAGE_ROOT      folder for migration images (default /var/local/haul)
  HAUL_SHARED_ROOTS    colon-separated folders that hold shared ploop disks (default none: shared disks refused);
                       every path in a command must resolve inside the image root, these, or the CT's VE_PRIVATE
  HAUL_MAX_LEASE_MS    the longest a final dump may hold a CT frozen (default and most: ${maxFrozenLeaseMs})
  HAUL_STATE_DIR       the agent's own state (default /var/lib/haul/agent)
  HAUL_LOG_PRETTY=1    human-readable logs; HAUL_LOG_LEVEL (default info)
  HAUL_TOPOLOGY_WAIT_MS how long to wait at start for the coordinator to create the streams and buckets
                       (default ${limits.topologyWaitMs}); this agent never creates or changes them
${metricsEnvHelp}`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(help);
  process.exit(0);
}
const node = process.env['HAUL_NODE'];
if (!node) {
  console.error('HAUL_NODE is required (see --help)');
  process.exit(2);
}
const hostRoot = process.env['HAUL_HOST_ROOT'] ?? '';
/** The host's boot id; the restore fence compares it with the one the preflight recorded. */
function readBootId(root: string): string {
  const file = `${root}/proc/sys/kernel/random/boot_id`;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    console.error(`cannot read the boot id from ${file}: ${(err as Error).message}`);
    process.exit(2);
  }
}
/** The roots commands are confined to, checked before anything starts: a wrong one exits 2, saying which. */
function hostBounds(imageRoot: string) {
  try {
    mkdirSync(imageRoot, { recursive: true });
    return hostBoundsFromEnv(process.env, imageRoot);
  } catch (err) {
    console.error(err instanceof SettingError ? err.message : `HAUL_IMAGE_ROOT: ${(err as Error).message}`);
    process.exit(2);
  }
}
const cfg: AgentConfig = {
  node,
  hostRoot,
  ...hostBounds(process.env['HAUL_IMAGE_ROOT'] ?? '/var/local/haul'),
  stateDir: process.env['HAUL_STATE_DIR'] ?? '/var/lib/haul/agent',
  heartbeatMs: limits.heartbeatMs,
  bootId: readBootId(hostRoot),
};
const log = createLogger('node-agent', node);
exitOnUncaught(log);
const metrics = metricsConfigOrExit(log);
const trust = trustFromEnvOrExit({ role: 'agent', node }, log);
const validators = createValidators();
const nc = await connectBus(busConfigFromEnv(`node-agent@${node}`));
await awaitTopologyOrExit(nc, log, Number(process.env['HAUL_TOPOLOGY_WAIT_MS'] ?? limits.topologyWaitMs));
const agent = createNodeAgent({ nc, validators, cfg, log, metrics, trust });
await agent.start();
stopOnSignals(log, agent, nc);

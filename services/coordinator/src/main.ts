import {
  busConfigFromEnv,
  connectBus,
  createLogger,
  defaultFrozenLeaseMs,
  maxFrozenLeaseMs,
  ensureTopology,
  exitOnUncaught,
  metricsConfigOrExit,
  metricsEnvHelp,
  stopOnSignals,
  trustFromEnvOrExit,
} from '@haul/bus';
import { createValidators } from '@haul/schemas';
import { createCoordinator } from './app.ts';

const help = `haul coordinator: turns migrate requests into steps, drives node agents and image streamers from the log.

Environment:
  HAUL_NATS_URL              NATS servers (default nats://127.0.0.1:4222); credentials as for the node agent
  HAUL_NKEY_SEED_FILE        the coordinator's nkey seed (coordinator.nk): signs its events and commands
  HAUL_IDENTITIES_FILE       the cluster's identities.json: who may sign what (events are verified against it)
  HAUL_INSECURE=1            debugging only: sign and verify nothing (warns at every start)
  HAUL_COORDINATOR_NAME      this instance's name in events (default coordinator)
  HAUL_MAX_PER_NODE          concurrent migrations a node may take part in (default 2)
  HAUL_FROZEN_LEASE_MS       default frozen lease of a final dump (default ${defaultFrozenLeaseMs})
  HAUL_REPLICAS              replicas of every stream and bucket (1, or 3 on a cluster). Set: missing ones are
                             created with it and existing ones changed to haul's config (logged). Unset: missing
                             ones get the replicas of the existing ones (else 1); existing ones are never changed
${metricsEnvHelp}`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(help);
  process.exit(0);
}
const name = process.env['HAUL_COORDINATOR_NAME'] ?? 'coordinator';
const log = createLogger('coordinator', name);
exitOnUncaught(log);

/** A whole number from the environment within [min, max] (the command schemas' range), or exit 2 naming it. */
function envInt(key: string, fallback: number, min: number, max: number): number {
  const raw = process.env[key];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^[0-9]+$/.test(raw) || n < min || n > max) {
    log.fatal({ [key]: raw }, `${key} must be a whole number from ${min} to ${max}`);
    process.exit(2);
  }
  return n;
}
const trust = trustFromEnvOrExit({ role: 'coordinator' }, log);
const frozenLeaseMs = envInt('HAUL_FROZEN_LEASE_MS', defaultFrozenLeaseMs, 1_000, maxFrozenLeaseMs);
const maxMigrationsPerNode = envInt('HAUL_MAX_PER_NODE', 2, 1, 10_000);
const metrics = metricsConfigOrExit(log);
const validators = createValidators();
// No async stack traces on requests: every JetStream publish is a request, and capturing a stack for each one cost
// the coordinator about a tenth of its CPU (bench:control); a failed request still says what failed.
const nc = await connectBus(busConfigFromEnv(`coordinator@${name}`), { noAsyncTraces: true });
const replicas = process.env['HAUL_REPLICAS'];
if (replicas !== undefined && !/^[1-5]$/.test(replicas)) {
  log.fatal({ replicas }, 'HAUL_REPLICAS must be 1 to 5');
  process.exit(2);
}
await ensureTopology(nc, replicas === undefined ? {} : { replicas: Number(replicas) }, log);
const coordinator = createCoordinator(
  nc,
  validators,
  {
    node: name,
    frozenLeaseMs,
    maxAttempts: 5,
    maxMigrationsPerNode,
  },
  log,
  { metrics, trust },
);
await coordinator.start();
stopOnSignals(log, coordinator, nc);

import {
  connectBus,
  createLoggerWith,
  ensureTopology,
  exitOnUncaught,
  metricsConfigOf,
  serviceConnection,
  serviceSettings,
  serviceTrust,
  stopOnSignals,
} from '@haul/bus';
import { createValidators, type CoordinatorConfig } from '@haul/schemas';
import { createCoordinator } from './app.ts';

const start = serviceSettings<CoordinatorConfig>({
  schema: 'coordinatorConfig',
  binary: 'haul-coordinator',
  summary:
    'haul coordinator: turns migrate requests into steps, drives node agents and image streamers from the log.',
});
const s = start.settings;
const log = createLoggerWith('coordinator', s.name, s.log);
exitOnUncaught(log);
const trust = serviceTrust(start, { role: 'coordinator' }, log);
const bus = serviceConnection(start, `coordinator@${s.name}`);
start.checked();

const validators = createValidators();
// No async stack traces on requests: every JetStream publish is a request, and capturing a stack for each one cost
// the coordinator about a tenth of its CPU (bench:control); a failed request still says what failed.
const nc = await connectBus(bus, { noAsyncTraces: true });
await ensureTopology(nc, s.replicas === undefined ? {} : { replicas: s.replicas }, log);
const coordinator = createCoordinator(
  nc,
  validators,
  {
    node: s.name,
    frozenLeaseMs: s.frozenLeaseMs,
    maxAttempts: 5,
    maxMigrationsPerNode: s.maxPerNode,
  },
  log,
  { metrics: metricsConfigOf(s.metrics), trust },
);
await coordinator.start();
stopOnSignals(log, coordinator, nc);

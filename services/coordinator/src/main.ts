import {
  connectBus,
  createLoggerWith,
  ensureTopologyOrExit,
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
const nc = await connectBus(bus);
await ensureTopologyOrExit(nc, s.replicas === undefined ? {} : { replicas: s.replicas }, log);
const coordinator = createCoordinator(
  nc,
  validators,
  {
    node: s.name,
    frozenLeaseMs: s.frozenLeaseMs,
    stallMs: s.streamStallMs,
    maxAttempts: 5,
    maxMigrationsPerNode: s.maxPerNode,
  },
  log,
  { metrics: metricsConfigOf(s.metrics), trust },
);
await coordinator.start();
stopOnSignals(log, coordinator, nc);

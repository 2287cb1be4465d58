import { mkdirSync, readFileSync } from 'node:fs';
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
  type ServiceSettings,
  stopOnSignals,
} from '@haul/bus';
import { createValidators, type NodeAgentConfig } from '@haul/schemas';
import { createNodeAgent } from './app.ts';
import type { AgentConfig } from './context.ts';
import { hostBoundsOf, SettingError } from './settings.ts';

const start: ServiceSettings<NodeAgentConfig> = serviceSettings({
  schema: 'nodeAgentConfig',
  binary: 'haul-node-agent',
  summary:
    'haul node agent: runs the host steps of migrations on this node (vzctl, criu, ploop through execa).',
});
const s = start.settings;

/** The host's boot id; the restore fence compares it with the one the preflight recorded. */
function readBootId(root: string): string {
  const file = `${root}/proc/sys/kernel/random/boot_id`;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    start.fail('hostRoot', `cannot read the boot id from ${file}: ${(err as Error).message}`);
  }
}
/** The roots commands are confined to, checked before anything starts (the image root is made, as at every start). */
function hostBounds() {
  try {
    mkdirSync(s.imageRoot, { recursive: true });
    return hostBoundsOf(s);
  } catch (err) {
    if (err instanceof SettingError) start.fail(err.field, err.message);
    start.fail('imageRoot', (err as Error).message);
  }
}
const cfg: AgentConfig = {
  node: s.node,
  hostRoot: s.hostRoot,
  ...hostBounds(),
  stateDir: s.stateDir,
  heartbeatMs: limits.heartbeatMs,
  bootId: readBootId(s.hostRoot),
};
const log = createLoggerWith('node-agent', s.node, s.log);
exitOnUncaught(log);
const trust = serviceTrust(start, { role: 'agent', node: s.node }, log);
const bus = serviceConnection(start, `node-agent@${s.node}`);
start.checked();

const validators = createValidators();
const nc = await connectBus(bus);
await awaitTopologyOrExit(nc, log, s.topologyWaitMs);
const agent = createNodeAgent({ nc, validators, cfg, log, metrics: metricsConfigOf(s.metrics), trust });
await agent.start();
stopOnSignals(log, agent, nc);

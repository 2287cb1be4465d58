import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import type { NodeHeartbeat } from '@haul/schemas';
import type { Tools } from './adapters/tools.ts';
import { initPidFile, type AgentConfig } from './context.ts';
import { processLive } from '@haul/bus';

/** CPU flags of this host, as the kernel reports them (the first processor's "flags" line). */
export function cpuFlags(): string[] {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    return line ? line.split(':')[1]!.trim().split(/\s+/).sort() : [];
  } catch {
    return [];
  }
}

/** What this host can do: facts that change only when criu or the kernel is upgraded, so read once at start. */
export type HostFacts = Pick<NodeHeartbeat, 'criuVersion' | 'memTrack' | 'cpuFlags'>;

export async function hostFacts(tools: Tools): Promise<HostFacts> {
  // Both read-only criu calls at once: the agent is ready a tool start sooner.
  const [criuVersion, memTrack] = await Promise.all([tools.criuVersion(), tools.criuMemTrack()]);
  return { criuVersion, memTrack, cpuFlags: cpuFlags() };
}

/**
 * CTs running on this node: those whose init pid file (`/var/run/ve/<ctid>.init.pid`, written by vzctl) names a
 * live process. A file read per CT, no tool call, so it is cheap enough for every heartbeat.
 */
export function runningCts(cfg: AgentConfig): string[] {
  let names: string[];
  try {
    names = readdirSync(`${cfg.hostRoot}/var/run/ve`);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    const m = /^([0-9]{1,10}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.init\.pid$/.exec(
      n,
    );
    if (!m) continue;
    let pid: number;
    try {
      pid = Number.parseInt(readFileSync(initPidFile(cfg, m[1]!), 'utf8').trim(), 10);
    } catch {
      continue; // stopped between the listing and the read
    }
    if (Number.isInteger(pid) && pid > 0 && processLive(pid)) out.push(m[1]!);
  }
  return out.sort();
}

/** One heartbeat: the facts read at start plus what changes (time, free space, running CTs). */
export function heartbeat(cfg: AgentConfig, facts: HostFacts): NodeHeartbeat {
  const fs = statfsSync(cfg.imageRoot);
  return {
    node: cfg.node,
    service: 'node-agent',
    pid: process.pid,
    time: new Date().toISOString(),
    ...facts,
    freeBytes: Number(fs.bavail) * Number(fs.bsize),
    imageRoot: cfg.imageRoot,
    runningCts: runningCts(cfg),
  };
}

import { readFileSync, statfsSync } from 'node:fs';
import type { NodeHeartbeat } from '@haul/schemas';
import type { Tools } from './adapters/tools.ts';
import type { AgentConfig } from './context.ts';

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

export async function capabilities(
  cfg: AgentConfig,
  tools: Tools,
  runningCts: string[],
): Promise<NodeHeartbeat> {
  const fs = statfsSync(cfg.imageRoot);
  return {
    node: cfg.node,
    service: 'node-agent',
    pid: process.pid,
    time: new Date().toISOString(),
    criuVersion: await tools.criuVersion(),
    memTrack: await tools.criuMemTrack(),
    cpuFlags: cpuFlags(),
    freeBytes: Number(fs.bavail) * Number(fs.bsize),
    imageRoot: cfg.imageRoot,
    runningCts,
  };
}

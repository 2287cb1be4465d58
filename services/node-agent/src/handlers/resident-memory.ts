import { readdirSync, readFileSync } from 'node:fs';

/** The pids a process started that still run (the kernel's children lists of each of its threads). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (list) out.push(...list.split(/\s+/).map(Number));
    } catch {
      // a thread that ended meanwhile, or a kernel without CONFIG_PROC_CHILDREN: its own size still counts
    }
  }
  return out;
}

function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+([0-9]+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return undefined;
  }
}

/** Upper bound on the processes a CT may have, so a fork bomb inside it cannot make the agent walk for ever. */
const maxProcesses = 100_000;

/**
 * The resident memory of a CT: VmRSS of its init (`rootPid`) and of every descendant, read from /proc without
 * touching the processes (a dump writes at most these pages; shared pages count once per process, so this leans
 * high). Undefined when the init process is gone.
 */
export function residentBytes(rootPid: number): number | undefined {
  const first = rssOf(rootPid);
  if (first === undefined) return undefined;
  let total = first;
  const queue = childrenOf(rootPid);
  const seen = new Set([rootPid]);
  while (queue.length > 0 && seen.size < maxProcesses) {
    const pid = queue.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    total += rssOf(pid) ?? 0;
    queue.push(...childrenOf(pid));
  }
  return total;
}

import { readdirSync, readFileSync } from 'node:fs';

/** What a service reads of a process from /proc/<pid>/stat (proc(5)); undefined once it is gone. */
export type ProcStat = { pid: number; state: string; ppid: number; pgrp: number; start: string };

export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // After the command's ")" (the command may hold spaces and parentheses): state (field 3), ppid (4), pgrp (5), …
  // starttime (22, clock ticks since boot).
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), start: f[19]! };
}

/** A process that has not ended: there, and not a zombie (ended, not yet reaped by its parent). */
const live = (st: ProcStat | undefined): st is ProcStat => st !== undefined && st.state !== 'Z';

/** Is the process with this pid there and not ended, whoever owns it? */
export const processLive = (pid: number): boolean => live(procStat(pid));

/** Every process now, but zombies. */
export function liveProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (live(st)) out.push(st);
  }
  return out;
}

/** The live processes (not zombies) of a process group. */
export const groupMembers = (pgrp: number): number[] =>
  liveProcesses()
    .filter((p) => p.pgrp === pgrp)
    .map((p) => p.pid);

/**
 * The pid names another process than the one recorded with its start time `start`: pids are used again. False
 * without a start time (a record from before they were kept) and once nothing has the pid.
 */
export function pidReused(pid: number, start: string | undefined): boolean {
  if (start === undefined) return false;
  const now = procStat(pid);
  return now !== undefined && now.start !== start;
}

import { readFileSync } from 'node:fs';

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

import { readFileSync } from 'node:fs';

/**
 * Does the process with this pid still run? Signal 0 finds it (a process of another user, EPERM, is there too), and a
 * zombie does not count: its tasks have ended, and the kernel has taken it out of its cgroup (cgroup_exit in
 * do_exit), which is where vzctl looks for a CT's tasks; only its exit status waits for its parent. A CT init or a
 * lock holder whose parent has gone is reaped by PID 1, which on some machines does so seconds later (a sandbox's
 * init that reaps every ~2 s here): until then `kill(pid, 0)` alone would still find it.
 */
export function processRunning(pid: number | undefined): boolean {
  if (!pid || pid < 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false; // reaped since
  }
  // The state (field 3) follows the command's ")", which may itself hold spaces and parentheses (proc(5)).
  return stat[stat.lastIndexOf(')') + 2] !== 'Z';
}

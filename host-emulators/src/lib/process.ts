import { readFileSync } from 'node:fs';

/**
 * Does the process with this pid still run? Signal 0 finds it (a process of another user, EPERM, is there too), and a
 * zombie does not count: it has ended, and only its exit status waits for its parent. On a host the CT's tasks ending
 * stops its VE, and vzctl reads that (ve.state STOPPED: libvzctl lib/env_nsops.c ns_is_env_run 1213–1216 →
 * lib/cgroup.c cg_env_get_ve_state 1149–1163, ebbfc38); the emulated CT is its init process, ended when it is a
 * zombie. An init or a lock holder whose parent has gone is reaped by PID 1 or the nearest subreaper, which on some
 * machines does so seconds later (a sandbox's init that reaps every ~2 s here): until then `kill(pid, 0)` alone would
 * still find it.
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

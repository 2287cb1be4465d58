import { readFileSync } from 'node:fs';

/**
 * Does the process with this pid still run? Signal 0 finds it (a process of another user, EPERM, is there too), and a
 * zombie does not count: it has ended, and only its exit status waits for its parent. On a host the CT's tasks ending
 * stops its VE, and vzctl reads that (ve.state STOPPED: libvzctl lib/env_nsops.c ns_is_env_run 1213–1216 →
 * lib/cgroup.c cg_env_get_ve_state 1149–1163, ebbfc38); the emulated CT is its init process, ended when it is a
 * zombie. An init or a lock holder whose parent has gone is reaped by PID 1 or the nearest subreaper, which on some
 * machines does so seconds later (a sandbox's init that reaps every ~2 s here): until then `kill(pid, 0)` alone would
 * still find it. With `start` (processStart's answer when the pid was recorded) it must also be that process: pids are
 * used again (pid_max is 32768 here, a few minutes of tests), and a record a SIGKILLed CT left must not take another
 * process for the CT.
 */
export function processRunning(pid: number | undefined, start?: string): boolean {
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
  if (stat[stat.lastIndexOf(')') + 2] === 'Z') return false;
  return start === undefined || startOf(stat) === start;
}

/** The start time of a process (field 22 of /proc/<pid>/stat, clock ticks since boot); undefined once it is gone. */
export function processStart(pid: number): string | undefined {
  try {
    return startOf(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

const startOf = (stat: string): string | undefined => stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];

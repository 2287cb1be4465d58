import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { processRunning, processStart } from './process.ts';

const state = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat[stat.lastIndexOf(')') + 2];
};

describe('processRunning', () => {
  it('finds a running process, not a zombie whose parent has not reaped it, nor a pid that is gone', async () => {
    // Given a shell that starts a child which ends only once the shell has become `sleep`, which never reaps it: a
    // zombie, whatever the shell does with its children before the exec
    const parent = spawn(
      'sh',
      [
        '-c',
        `sh -c 'until read -r c < /proc/$PPID/comm && [ "$c" = sleep ]; do :; done' & echo $!; exec sleep 60`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const [line] = (await once(createInterface({ input: parent.stdout }), 'line')) as [string];
      const zombie = Number(line);
      const deadline = Date.now() + 30_000;
      while (state(zombie) !== 'Z') {
        assert.ok(Date.now() < deadline, `the child is still ${state(zombie)} after 30 s`);
        await new Promise((r) => setImmediate(r));
      }

      // When each is asked about
      // Then the sleeping parent runs, the zombie does not (though signal 0 still finds it), a pid past the
      // largest does not
      assert.equal(processRunning(parent.pid), true);
      assert.doesNotThrow(() => process.kill(zombie, 0));
      assert.equal(processRunning(zombie), false);
      assert.equal(processRunning(Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1), false);
      assert.equal(processRunning(undefined), false);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('given a recorded start time, finds the process only while its pid still names the process recorded', () => {
    // Given this process's start time, and another one (as a record of an earlier process with the same pid has)
    const start = processStart(process.pid);
    assert.match(start ?? '', /^\d+$/);
    const other = String(Number(start) + 1);

    // When this pid is asked about with each
    // Then the right start time finds it, the other does not, and a pid that is gone has no start time
    assert.equal(processRunning(process.pid, start), true);
    assert.equal(processRunning(process.pid, other), false);
    assert.equal(processStart(Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1), undefined);
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { it } from 'node:test';
import { pino } from 'pino';
import { exitWhenLoopEnds, pidAlive } from './lifecycle.ts';

const log = pino({ level: 'silent' });

it('exits non-zero when a consumer loop ends or fails while the service is not stopping', async () => {
  const codes: number[] = [];
  const running = new AbortController();
  await exitWhenLoopEnds(log, 'loop', Promise.resolve(), running.signal, (c) => codes.push(c));
  await exitWhenLoopEnds(log, 'loop', Promise.reject(new Error('consumer deleted')), running.signal, (c) =>
    codes.push(c),
  );
  assert.deepEqual(codes, [70, 70]);
});

it('stays quiet when the loop ends because the service is stopping', async () => {
  const codes: number[] = [];
  const stopping = new AbortController();
  stopping.abort();
  await exitWhenLoopEnds(log, 'loop', Promise.resolve(), stopping.signal, (c) => codes.push(c));
  await exitWhenLoopEnds(log, 'loop', Promise.reject(new Error('closed')), stopping.signal, (c) =>
    codes.push(c),
  );
  assert.deepEqual(codes, []);
});

it('tells a live process from one that has exited', async () => {
  assert.equal(pidAlive(process.pid), true);
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  assert.equal(pidAlive(child.pid!), false, 'an exited (and reaped) child is gone');
});

it('takes a zombie (ended, its parent not reaping it) for gone, and a group of zombies', async () => {
  // A shell starts a child in a process group of its own (setsid), which ends only once the shell has become `sleep`,
  // which never reaps it: a zombie, whatever the shell does with its children before the exec
  const parent = spawn(
    'sh',
    [
      '-c',
      `setsid sh -c 'until read -r c < /proc/$PPID/comm && [ "$c" = sleep ]; do :; done' & echo $!; exec sleep 60`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const [line] = (await once(createInterface({ input: parent.stdout }), 'line')) as [string];
    const zombie = Number(line);
    const stateOf = () => {
      const stat = readFileSync(`/proc/${zombie}/stat`, 'utf8');
      return stat[stat.lastIndexOf(')') + 2];
    };
    const deadline = Date.now() + 30_000;
    while (stateOf() !== 'Z') {
      assert.ok(Date.now() < deadline, `the child is still ${stateOf()} after 30 s`);
      await new Promise((r) => setImmediate(r));
    }
    assert.doesNotThrow(() => process.kill(zombie, 0), 'signal 0 still finds it');
    assert.doesNotThrow(() => process.kill(-zombie, 0), 'and its group');
    assert.equal(pidAlive(zombie), false);
    assert.equal(pidAlive(-zombie), false);
    assert.equal(pidAlive(parent.pid!), true);
  } finally {
    parent.kill('SIGKILL');
  }
});

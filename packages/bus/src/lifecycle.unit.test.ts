import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
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

import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { createLogger } from '@haul/bus';
import type { StepCommand } from '@haul/schemas';
import type { HandlerContext } from '../context.ts';
import { withToolTime } from '../handlers/index.ts';
import { createRunner } from './exec.ts';
import { asToolTime, measureToolTime } from './tool-time.ts';

const run = createRunner(createLogger('test', undefined, { HAUL_LOG_LEVEL: 'silent' }));
const sleep = (s: number) => run('sleep', [String(s)], { timeoutMs: 10_000 });

describe("a step's tool time (toolMs)", () => {
  it("counts the runner's tool processes, not the step's own waiting", async () => {
    const t0 = performance.now();
    const { toolMs } = await measureToolTime(async () => {
      await sleep(0.2);
      await delay(200);
    });
    const wall = performance.now() - t0;
    assert.ok(toolMs >= 190, `toolMs ${toolMs}`);
    assert.ok(toolMs <= wall - 150, `toolMs ${toolMs} of ${wall} ms`);
  });

  it('keeps the steps apart: a step that overlaps another one in time gets only its own tools', async () => {
    const [withTool, without] = await Promise.all([
      measureToolTime(() => sleep(0.2)),
      measureToolTime(() => delay(200)),
    ]);
    assert.ok(withTool.toolMs >= 190);
    assert.equal(without.toolMs, 0);
  });

  it('counts a tool inside another tool once (the held dump around criu)', async () => {
    const t0 = performance.now();
    const { toolMs } = await measureToolTime(() => asToolTime(() => sleep(0.2)));
    const wall = performance.now() - t0;
    // Counted twice it would be about twice the wall time, however slow the machine.
    assert.ok(toolMs >= 190 && toolMs <= wall, `toolMs ${toolMs} of ${wall} ms`);
  });

  it('counts tools run at the same time by the time any of them ran, not their sum', async () => {
    const t0 = performance.now();
    const { toolMs } = await measureToolTime(async () => {
      await Promise.all([sleep(0.2), sleep(0.2), sleep(0.2)]);
    });
    const wall = performance.now() - t0;
    assert.ok(toolMs >= 190, `toolMs ${toolMs}`);
    assert.ok(toolMs <= wall, `toolMs ${toolMs} > the step's wall time ${wall} ms`);
  });

  it('is recorded in every handler result', async () => {
    const cmd = { step: 'umountSource' } as unknown as StepCommand;
    const ctx = {} as HandlerContext;
    const r = (await withToolTime(async () => {
      await sleep(0.1);
      return { actions: ['unmounted'] };
    })(cmd, ctx)) as { actions: string[]; toolMs: number };
    assert.deepEqual(r.actions, ['unmounted']);
    assert.ok(r.toolMs >= 90, `toolMs ${r.toolMs}`);
    const none = (await withToolTime(() => Promise.resolve({ actions: [] }))(cmd, ctx)) as {
      toolMs: number;
    };
    assert.equal(none.toolMs, 0);
  });

  it('runs a tool outside any step as before', async () => {
    assert.equal((await sleep(0)).exitCode, 0);
  });
});

import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { pino } from 'pino';
import type { TransferProgress } from '@haul/schemas';
import { createProgressReporter } from '../src/progress-report.ts';

/** Every write begun has reached `publish` (they are chained promises). */
const settled = () => new Promise((r) => setImmediate(r));

/** A reporter on a hand-driven clock: each tick() is one report period. */
function setup() {
  mock.timers.enable({ apis: ['setInterval'] });
  let now = Date.parse('2026-01-01T00:00:00.000Z');
  const written: TransferProgress[] = [];
  let removed = 0;
  const report = createProgressReporter({
    migrationId: 'm-report-01',
    commandId: 'm-report-01:streamImages:0:1',
    node: 'node-a',
    everyMs: 1000,
    publish: (r) => Promise.resolve(void written.push(r)),
    remove: () => Promise.resolve(void removed++),
    log: pino({ level: 'silent' }),
    now: () => now,
  });
  const tick = async () => {
    now += 1000;
    mock.timers.tick(1000);
    await settled();
  };
  return { report, written, tick, removed: () => removed };
}

describe("a transfer's progress report", () => {
  it('is written while bytes move, not while nothing moves: its last sign of life ages', async (t) => {
    t.after(() => mock.timers.reset());
    const { report, written, tick } = setup();
    report.sized(100);
    report.moved(10);
    await tick();
    assert.equal(written.length, 1);
    assert.equal(written[0]!.bytesDone, 10);
    assert.equal(written[0]!.movedAt, '2026-01-01T00:00:00.000Z');
    await tick();
    await tick();
    assert.equal(written.length, 1, 'nothing new: nothing written');
  });

  it('says at once that it waits, again every period while it waits, and when the wait ended', async (t) => {
    t.after(() => mock.timers.reset());
    const { report, written, tick } = setup();
    const resumed = report.waiting('priority');
    await settled();
    assert.deepEqual(written.at(-1)!.waiting, { reason: 'priority', since: '2026-01-01T00:00:00.000Z' });
    await tick();
    await tick();
    assert.equal(written.length, 3, 'a wait is reported every period: the report is its proof of life');
    assert.equal(written.at(-1)!.time, '2026-01-01T00:00:02.000Z');
    resumed();
    await settled();
    assert.equal(written.at(-1)!.waiting, undefined);
    assert.equal(written.at(-1)!.waitedUntil, '2026-01-01T00:00:02.000Z');
  });

  it('is not written before it has a sign of life: the report of a streamer that ran it before a restart stays', async (t) => {
    t.after(() => mock.timers.reset());
    const { report, written, tick } = setup();
    report.sized(100);
    report.restart();
    await tick();
    assert.equal(written.length, 0);
    report.moved(1);
    await tick();
    assert.equal(written.length, 1);
  });

  it('is removed once the outcome is recorded, and only if it was ever written', async (t) => {
    t.after(() => mock.timers.reset());
    const quiet = setup();
    await quiet.report.clear();
    assert.equal(quiet.removed(), 0);
    mock.timers.reset();
    const moved = setup();
    moved.report.moved(1);
    await moved.tick();
    await moved.report.clear();
    assert.equal(moved.removed(), 1);
    await moved.tick();
    assert.equal(moved.written.length, 1, 'nothing is written after it was removed');
  });
});

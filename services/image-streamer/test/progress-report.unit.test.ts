import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { pino } from 'pino';
import type { TransferProgress } from '@haul/schemas';
import { lastSignOfLife } from '@haul/domain';
import { createProgressReporter, readBackWait } from '../src/progress-report.ts';

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

  it("waits to resume while a read-back's answers show it reading on, and stops when one shows no progress", async (t) => {
    t.after(() => mock.timers.reset());
    const { report, written, tick } = setup();
    report.sized(100);
    report.moved(60); // before the connection was lost
    const readBack = readBackWait(report);
    // Given answers that show the receiver reading on
    readBack.answered({ bytesRead: 0, bytesTotal: 16384 });
    await tick();
    readBack.answered({ bytesRead: 4096, bytesTotal: 16384 });
    await tick();
    // Then it waits for the receiver's work (sync), its bytes counted again from 0: below the total, a read-back
    assert.equal(written.at(-1)!.waiting?.reason, 'sync');
    assert.equal(written.at(-1)!.bytesDone, 0);
    assert.equal(lastSignOfLife(written.at(-1)), Date.parse('2026-01-01T00:00:02.000Z'));
    // When one shows no more read
    readBack.answered({ bytesRead: 4096, bytesTotal: 16384 });
    await tick();
    await tick();
    // Then the wait ended there: the transfer's last sign of life ages from that answer on
    assert.equal(written.at(-1)!.waiting, undefined);
    assert.equal(lastSignOfLife(written.at(-1)), Date.parse('2026-01-01T00:00:02.000Z'));
    // And the next answer that shows progress waits again
    readBack.answered({ bytesRead: 8192, bytesTotal: 16384 });
    await settled();
    assert.equal(written.at(-1)!.waiting?.reason, 'sync');
    // And an answer past the offer's bytes is no progress
    readBack.answered({ bytesRead: 32768, bytesTotal: 16384 });
    await settled();
    assert.equal(written.at(-1)!.waiting, undefined);
  });
});

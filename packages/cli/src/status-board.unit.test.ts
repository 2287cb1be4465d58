import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createOutput } from './output.ts';
import { createStatusBoard } from './status-board.ts';

/** An output into a string, as a terminal (isTTY) or a pipe. */
function sink(isTTY: boolean, env: NodeJS.ProcessEnv = {}) {
  const s = { written: '', isTTY, columns: 40, write: (x: string) => (s.written += x) };
  return { s, out: createOutput(s, env) };
}

describe('the status board of the live view', () => {
  it('on a terminal rewrites one status line in place, logs above it, and erases it at the end', () => {
    const { s, out } = sink(true, { TERM: 'xterm' });
    let text = 'phase 1';
    const b = createStatusBoard(out, () => ({ text, key: text }), { tickMs: 60_000 });
    b.update();
    b.log('[pre-dump 0] 100 pages');
    text = 'phase 2 '.repeat(10);
    b.update();
    b.close();
    assert.equal(
      s.written,
      '\r\x1b[2Kphase 1' +
        '\r\x1b[2K[pre-dump 0] 100 pages\n\r\x1b[2Kphase 1' +
        `\r\x1b[2K${'phase 2 '.repeat(10).slice(0, 38)}…` +
        '\r\x1b[2K',
    );
  });
  it('on a terminal its clocks tick between events', async () => {
    const { s, out } = sink(true, { TERM: 'xterm' });
    let n = 0;
    let ticked: () => void = () => {};
    const third = new Promise<void>((resolve) => (ticked = resolve));
    const b = createStatusBoard(
      out,
      () => {
        if (++n === 3) ticked();
        return { text: `FROZEN ${n}`, key: 'frozen' };
      },
      { tickMs: 5 },
    );
    b.update();
    // The board's timer is unref'ed (it never keeps haul alive): this one keeps the test's event loop running.
    const keepAlive = setTimeout(() => {}, 60_000);
    await third;
    clearTimeout(keepAlive);
    b.close();
    assert.match(s.written, /FROZEN 1.*FROZEN 2.*FROZEN 3/s);
  });
  it('on a pipe (or TERM=dumb) prints plain lines: on change, and new numbers at most every few seconds', () => {
    for (const { s, out } of [sink(false), sink(true, { TERM: 'dumb' })]) {
      let now = 0;
      let st = { text: 'pre-dump 0 10%', key: 'pre-dump 0' };
      const b = createStatusBoard(out, () => st, { now: () => now, plainEveryMs: 5_000 });
      b.update();
      st = { text: 'pre-dump 0 20%', key: 'pre-dump 0' };
      now = 1_000;
      b.update();
      b.log('[pre-dump 0] 100 pages');
      now = 6_000;
      b.update();
      st = { text: 'FROZEN 0.1s', key: 'frozen' };
      now = 6_100;
      b.update();
      b.close();
      assert.equal(s.written, 'pre-dump 0 10%\n[pre-dump 0] 100 pages\npre-dump 0 20%\nFROZEN 0.1s\n');
      assert.doesNotMatch(s.written, /[\r\x1b]/);
    }
  });
});

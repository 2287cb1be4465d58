// Loaded into every test process by scripts/test.sh (node --test --import): a test still running after each
// HAUL_TEST_WATCHDOG_MS (120 s unless set) says so on stderr, with its full name and its file. When a file runs past
// its time budget, the test runner fails it as timed out and names only the file; these lines name the test that
// hung, and show a slow one while it runs. Hooks at the top level apply to every test of the file, nested ones too.
import { basename } from 'node:path';
import { afterEach, beforeEach } from 'node:test';
import { isMainThread } from 'node:worker_threads';

const everyMs = Number(process.env['HAUL_TEST_WATCHDOG_MS'] ?? 120_000);
// Only in the test runner's child processes (it sets NODE_TEST_CONTEXT), never in a thread a test starts.
if (process.env['NODE_TEST_CONTEXT'] && isMainThread && everyMs > 0) {
  const file = basename(process.argv[1] ?? '?');
  const timers = new Map();
  beforeEach((t) => {
    const started = Date.now();
    const timer = setInterval(() => {
      const s = Math.round((Date.now() - started) / 1000);
      process.stderr.write(`[test] still running after ${s} s: ${t.fullName} (${file})\n`);
    }, everyMs);
    timer.unref();
    timers.set(t, timer);
  });
  afterEach((t) => {
    clearInterval(timers.get(t));
    timers.delete(t);
  });
}

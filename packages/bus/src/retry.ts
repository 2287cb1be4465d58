import { setTimeout as delay } from 'node:timers/promises';
import { isConnectionGone, isTransient } from './errors.ts';
import { limits } from './conventions.ts';

/**
 * Run a JetStream call, retrying transient failures (leader election: 503 / "jetstream not enabled") with
 * capped exponential backoff for up to `limits.leaderElectionRetryMs`. Other errors pass through at once, and so
 * does a failure of a connection this process closed or is draining (isConnectionGone): retrying it only held a
 * stopping service (or a test's process) alive for the whole budget, 30 s.
 */
export async function retryTransient<T>(
  fn: () => Promise<T>,
  budgetMs: number = limits.leaderElectionRetryMs,
): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || isConnectionGone(err) || Date.now() + wait > deadline) throw err;
      await delay(wait);
    }
  }
}

/**
 * Read until what was read shows what it must (`shows`), again after each of `waitsMs`: for a read of a migration's
 * log whose absence of an intent decides a refusal. An intent's append was acknowledged before its command or offer
 * was sent, but a stream leader of nats-server before 2.11 answers reads before it has applied what it took over
 * (limits.intentReadAgainMs). Returns the last read and the number of reads; `undefined` when `signal` ended a wait.
 */
export async function readAgainUntil<T>(
  read: () => Promise<T>,
  shows: (r: T) => boolean,
  opts: { signal?: AbortSignal; waitsMs?: readonly number[] } = {},
): Promise<{ read: T; reads: number } | undefined> {
  const { waitsMs = limits.intentReadAgainMs } = opts;
  let last = await read();
  let reads = 1;
  for (const wait of waitsMs) {
    if (shows(last)) break;
    const waited = await delay(wait, true, opts.signal ? { signal: opts.signal } : {}).catch(() => false);
    if (!waited) return undefined;
    last = await read();
    reads++;
  }
  return { read: last, reads };
}

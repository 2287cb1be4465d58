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

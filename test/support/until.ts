import { setTimeout as delay } from 'node:timers/promises';

/**
 * Look again every `everyMs` until `ok` holds, or fail naming `what` after `ms`: for a condition with no event to
 * await (another process's start or end, a file another process grows, what a follow has delivered).
 */
export async function until(
  ok: () => boolean | Promise<boolean>,
  what: string | (() => string),
  ms = 30_000,
  everyMs = 10,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${typeof what === 'string' ? what : what()}`);
    await delay(everyMs);
  }
}

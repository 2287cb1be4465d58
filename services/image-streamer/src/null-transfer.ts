import { setTimeout as delay } from 'node:timers/promises';
import type { Transfer } from './app.ts';

/**
 * A transfer that moves nothing: it answers after `delayMs` as if an empty folder had been sent. Everything around
 * it (the command queue, the duplicate check, the outcome event) is the streamer's own. For measuring the control
 * plane (npm run bench:control).
 */
export const nullTransfer =
  (delayMs: number): Transfer =>
  async () => {
    await delay(delayMs);
    return { bytes: 0, files: 0, durationMs: delayMs, mbPerSec: 0, resumedBytes: 0, retries: 0 };
  };

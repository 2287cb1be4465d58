import { setTimeout as delay } from 'node:timers/promises';

/**
 * A token bucket in bytes per second (MB = 10^6 bytes), with a burst of one 1 MiB chunk or 1/20 s of traffic,
 * whichever is larger; unlimited when no rate is given.
 */
export function createRateLimiter(mbPerSec: number | undefined): (bytes: number) => Promise<void> {
  if (!mbPerSec) return () => Promise.resolve();
  const rate = mbPerSec * 1e6;
  const burst = Math.max(1024 * 1024, rate / 20);
  let tokens = 0;
  let last = performance.now();
  return async (bytes) => {
    for (;;) {
      const now = performance.now();
      tokens = Math.min(burst, tokens + ((now - last) / 1000) * rate);
      last = now;
      if (tokens >= Math.min(bytes, burst)) {
        tokens -= bytes;
        return;
      }
      await delay(Math.ceil(((Math.min(bytes, burst) - tokens) / rate) * 1000));
    }
  };
}

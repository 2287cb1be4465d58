/**
 * At most `n` at a time: acquire() resolves with a release function. A waiter whose `signal` aborts leaves the queue
 * (acquire rejects with the signal's reason) and takes no slot.
 */
export function createSlots(n: number) {
  let free = n;
  const queue: (() => void)[] = [];
  const release = () => {
    const next = queue.shift();
    if (next) next();
    else free++;
  };
  const wait = (signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const take = () => {
        signal?.removeEventListener('abort', leave);
        resolve();
      };
      const leave = () => {
        queue.splice(queue.indexOf(take), 1);
        reject(signal?.reason as Error);
      };
      queue.push(take);
      signal?.addEventListener('abort', leave, { once: true });
    });
  return {
    async acquire(signal?: AbortSignal): Promise<() => void> {
      signal?.throwIfAborted();
      if (free > 0) free--;
      else await wait(signal);
      let done = false;
      return () => {
        if (done) return;
        done = true;
        release();
      };
    },
    /** Whether an acquire would wait now. */
    get full(): boolean {
      return free === 0;
    },
  };
}

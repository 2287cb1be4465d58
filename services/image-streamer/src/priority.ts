/**
 * Transfers run side by side, but final-dump images are on the frozen-time critical path: while any final transfer
 * runs, iteration transfers wait between chunks (they keep their connection and resume where they were).
 */
export type Priority = 'final' | 'iteration';

export function createPriorityGate() {
  let finals = 0;
  const waiting: (() => void)[] = [];
  const blocks = (priority: Priority) => priority === 'iteration' && finals > 0;
  /** Until the next wake-up; a waiter whose signal aborts leaves the queue and rejects with its reason. */
  const wakeUp = (signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener('abort', leave);
        resolve();
      };
      const leave = () => {
        waiting.splice(waiting.indexOf(wake), 1);
        reject(signal?.reason as Error);
      };
      waiting.push(wake);
      signal?.addEventListener('abort', leave, { once: true });
    });
  return {
    /** Register a running transfer; call the returned function when it ends. */
    enter(priority: Priority): () => void {
      if (priority !== 'final') return () => {};
      finals++;
      let left = false;
      return () => {
        if (left) return;
        left = true;
        if (--finals === 0) for (const w of waiting.splice(0)) w();
      };
    },
    /** Whether a transfer of this priority would wait at its next chunk now. */
    blocks,
    /** Before each chunk: an iteration transfer waits while a final transfer runs (or until `signal` aborts). */
    async turn(priority: Priority, signal?: AbortSignal): Promise<void> {
      signal?.throwIfAborted();
      while (blocks(priority)) await wakeUp(signal);
    },
    get finalsRunning(): number {
      return finals;
    },
  };
}

export type PriorityGate = ReturnType<typeof createPriorityGate>;

export { createSlots } from '@haul/bus';

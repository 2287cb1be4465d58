/**
 * Transfers run side by side, but final-dump images are on the frozen-time critical path: while any final transfer
 * runs, iteration transfers wait between chunks (they keep their connection and resume where they were).
 */
export type Priority = 'final' | 'iteration';

export function createPriorityGate() {
  let finals = 0;
  const waiting: (() => void)[] = [];
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
    /** Before each chunk: an iteration transfer waits while a final transfer runs. */
    async turn(priority: Priority): Promise<void> {
      while (priority === 'iteration' && finals > 0) await new Promise<void>((r) => waiting.push(r));
    },
    get finalsRunning(): number {
      return finals;
    },
  };
}

export type PriorityGate = ReturnType<typeof createPriorityGate>;

export { createSlots } from '@haul/bus';

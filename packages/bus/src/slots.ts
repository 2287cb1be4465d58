/** At most `n` at a time: acquire() resolves with a release function. */
export function createSlots(n: number) {
  let free = n;
  const queue: (() => void)[] = [];
  const release = () => {
    const next = queue.shift();
    if (next) next();
    else free++;
  };
  return {
    async acquire(): Promise<() => void> {
      if (free > 0) free--;
      else await new Promise<void>((r) => queue.push(r));
      let done = false;
      return () => {
        if (done) return;
        done = true;
        release();
      };
    },
  };
}

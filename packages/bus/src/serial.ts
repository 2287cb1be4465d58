/**
 * Work keyed by a name (a migration's id): the pieces of one key run strictly one at a time, in the order they were
 * handed over, and the pieces of different keys side by side. A piece that fails does not stop the ones after it:
 * each caller gets its own piece's result. A key costs nothing once its last piece has settled.
 *
 * The coordinator runs each migration's turns through one (its process manager), and a node agent each migration's
 * commands and host actions (its command queue and its frozen leases): migrations never wait for each other there,
 * and no migration ever has two things going at once.
 */
export function createSerialByKey() {
  const chains = new Map<string, Promise<unknown>>();
  return {
    /** Run `fn` after every piece handed over before for `key` has settled. */
    run<T>(key: string, fn: () => Promise<T>): Promise<T> {
      const prev = chains.get(key) ?? Promise.resolve();
      const next = prev.then(fn, fn);
      const settled = next.catch(() => undefined);
      chains.set(key, settled);
      void settled.then(() => {
        if (chains.get(key) === settled) chains.delete(key);
      });
      return next;
    },
    /** Whether `key` has a piece running or waiting. */
    busy(key: string): boolean {
      return chains.has(key);
    },
    /** Keys with a piece running or waiting. */
    get size(): number {
      return chains.size;
    },
    /** Settles once no key has a piece running or waiting (including pieces handed over meanwhile). */
    async idle(): Promise<void> {
      while (chains.size > 0) await Promise.all(chains.values());
    },
  };
}

export type SerialByKey = ReturnType<typeof createSerialByKey>;

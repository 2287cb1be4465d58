/**
 * The background writebacks of the files live passes finished (receiver.ts syncInBackground), one at a time: a sync
 * holds one of libuv's four pool threads for as long as its file takes, and several at once would leave none for the
 * lookups and file calls of other transfers.
 *
 * A durable pass (a local disk's frozen one) settles the writebacks of its own files only, before it syncs them:
 * one still queued is taken out, since the pass syncs that file itself anyway; one running is waited for, so that a
 * failure the kernel reports once goes to one of the two syncs, and is kept, not lost between them. Another
 * migration's writebacks stay where they are: a frozen pass that waited for every writeback of the node waited for
 * other CTs' disks too, and an evacuation sends many CTs to one target at once. Beside four other copies' 256 MiB
 * live passes that ended together, an 8 MiB frozen pass took 0.87-0.93 s that way and takes 0.20-0.24 s now (0.02-0.08
 * alone). What is left is the kernel's: on ext4 a sync shares the device's queue and the journal with a sync running
 * beside it (two fdatasyncs, 8 MiB beside 512 MiB: 0.19-0.41 s instead of 0.01).
 */

/** Sync one file's data to disk. A failure is the caller's to keep (onFailure). */
export type SyncFile = (path: string) => Promise<void>;

export type WriteBacks = {
  /** Queue the writeback of a finished file (once, however often it is queued before it starts). */
  start(path: string): void;
  /**
   * Let the writebacks of `paths` end: those queued are dropped (the caller syncs their files itself), one running is
   * waited for. Never rejects.
   */
  settle(paths: Iterable<string>): Promise<void>;
  /** Writebacks queued or running. */
  pending(): number;
};

export function createWriteBacks(sync: SyncFile, onFailure: (path: string, err: Error) => void): WriteBacks {
  /** In the order they were queued (a Set keeps it). */
  const queued = new Set<string>();
  let running: { path: string; done: Promise<void> } | undefined;

  function next(): void {
    if (running) return;
    const path = queued.values().next().value;
    if (path === undefined) return;
    queued.delete(path);
    const done = sync(path)
      .catch((err: unknown) => onFailure(path, err as Error))
      .finally(() => {
        running = undefined;
        next();
      });
    running = { path, done };
  }

  return {
    start(path) {
      queued.add(path);
      next();
    },
    async settle(paths) {
      const mine = new Set(paths);
      for (const p of mine) queued.delete(p);
      const r = running;
      if (r && mine.has(r.path)) await r.done;
    },
    pending: () => queued.size + (running ? 1 : 0),
  };
}

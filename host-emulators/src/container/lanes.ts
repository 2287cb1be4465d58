import { read } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * Run `count` tasks in `lanes` at once, by default as many as this machine has cores, up to four (libuv's pool's
 * size): each lane takes the next task when its last one is done, and a failed task stops the other lanes before
 * their next one. When this settles every lane has ended (the caller may close its files), and the first failure is
 * thrown. What the CT's memory is filled with runs so: the first touch of fresh memory costs a fault in the guest and,
 * on a VM, one in the host, and these faults then run on every core.
 */
export async function inLanes(
  count: number,
  task: (i: number) => Promise<void>,
  lanes = Math.min(4, availableParallelism()),
): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (next < count && !failed) await task(next++);
  };
  const running = Array.from({ length: lanes }, () =>
    lane().catch((e: unknown) => {
      failed = true;
      throw e;
    }),
  );
  const ended = await Promise.allSettled(running);
  const failure = ended.find((r) => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/**
 * Read `length` bytes into `buf` at `offset`, from `position` of the file (null: where the file is), however many
 * reads it takes (a read may come back short, as on a signal). A read that gives nothing throws `ended`.
 */
export async function readFully(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number | null,
  ended: string,
): Promise<void> {
  for (let done = 0; done < length;) {
    const at = position === null ? null : position + done;
    const got = await new Promise<number>((resolve, reject) =>
      read(fd, buf, offset + done, length - done, at, (e, n) => (e ? reject(e) : resolve(n))),
    );
    if (got <= 0) throw new Error(ended);
    done += got;
  }
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createWriteBacks } from '../src/write-backs.ts';

/** A fake sync per path that ends when the test says so, and the order the syncs started in. */
function heldSyncs() {
  const started: string[] = [];
  const ends = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  const failed: string[] = [];
  const wb = createWriteBacks(
    (path) =>
      new Promise<void>((resolve, reject) => {
        started.push(path);
        ends.set(path, { resolve, reject });
      }),
    (path, err) => failed.push(`${path}: ${err.message}`),
  );
  /** End the running sync of `path`, and let what that starts start. */
  const end = async (path: string, err?: Error) => {
    const e = ends.get(path)!;
    ends.delete(path);
    if (err) e.reject(err);
    else e.resolve();
    await new Promise((r) => setImmediate(r));
  };
  return { wb, started, failed, end };
}

/** Whether `p` has settled once everything already queued has run. */
async function settledNow(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  return settled;
}

describe('the background writebacks of finished files', () => {
  it('runs one at a time, in the order queued, each file once however often it was queued before it started', async () => {
    // Given the writebacks of three files queued at once, the second's twice
    const { wb, started, end } = heldSyncs();
    wb.start('/copy/a');
    wb.start('/copy/b');
    wb.start('/copy/b');
    wb.start('/copy/c');
    // Then only the first runs, and each next one starts when the one before ends
    assert.deepEqual(started, ['/copy/a']);
    await end('/copy/a');
    assert.deepEqual(started, ['/copy/a', '/copy/b']);
    await end('/copy/b');
    await end('/copy/c');
    assert.deepEqual(started, ['/copy/a', '/copy/b', '/copy/c']);
    assert.equal(wb.pending(), 0);
  });

  it('runs a file again that was queued while its sync ran (a later pass wrote it since)', async () => {
    const { wb, started, end } = heldSyncs();
    wb.start('/copy/a');
    wb.start('/copy/a');
    await end('/copy/a');
    assert.deepEqual(started, ['/copy/a', '/copy/a']);
    await end('/copy/a');
    assert.equal(wb.pending(), 0);
  });

  it("settles a durable pass's files without waiting for another copy's writeback", async () => {
    // Given another copy's writeback running (a big disk's), and one of this copy's files queued behind it
    const { wb, started, end } = heldSyncs();
    wb.start('/other/root.hds');
    wb.start('/mine/root.hds');
    // When this copy's durable pass settles its files
    const settled = wb.settle(['/mine/root.hds', '/mine/DiskDescriptor.xml']);
    // Then it goes on at once, and its queued file is taken out: the pass syncs it itself
    assert.equal(await settledNow(settled), true);
    await end('/other/root.hds');
    wb.start('/third/root.hds');
    assert.deepEqual(started, ['/other/root.hds', '/third/root.hds']);
    await end('/third/root.hds');
  });

  it("waits for its own file's writeback that is running, and its failure is kept before the pass goes on", async () => {
    // Given this copy's file's writeback running
    const { wb, failed, end } = heldSyncs();
    wb.start('/mine/root.hds');
    // When the durable pass settles its files
    const settled = wb.settle(['/mine/root.hds']);
    // Then it waits for that sync, which the kernel's report of a failed write may go to
    assert.equal(await settledNow(settled), false);
    await end('/mine/root.hds', new Error('EIO: i/o error, fdatasync'));
    assert.equal(await settledNow(settled), true);
    assert.deepEqual(failed, ['/mine/root.hds: EIO: i/o error, fdatasync']);
  });

  it('goes on with the next file after a sync that failed', async () => {
    const { wb, started, failed, end } = heldSyncs();
    wb.start('/copy/a');
    wb.start('/copy/b');
    await end('/copy/a', new Error('EIO'));
    assert.deepEqual(started, ['/copy/a', '/copy/b']);
    assert.deepEqual(failed, ['/copy/a: EIO']);
    await end('/copy/b');
    assert.equal(wb.pending(), 0);
  });
});

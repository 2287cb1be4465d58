import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pidAlive } from '@haul/bus';
import { ctLockFile, heldBy, lockPid, releaseCtLock, takeCtLock } from './ct-lock.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-ct-lock-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("a migration's CT lock (vzctl's LOCKDIR/<ctid>.lck)", () => {
  it(
    'is held by a holder that names the migration, refuses a second taker, and is released only by its own',
    {
      timeout: 30_000,
    },
    async () => {
      const file = ctLockFile(dir, '101');
      assert.deepEqual(await takeCtLock(file, 'm-one'), { held: true });
      const holder = lockPid(file)!;
      assert.ok(
        pidAlive(holder) && holder !== process.pid,
        'a process of its own names the lock, not the agent',
      );
      assert.ok(heldBy(file, 'm-one') && !heldBy(file, 'm-two'));

      assert.deepEqual(await takeCtLock(file, 'm-two'), { held: false, by: holder });
      assert.match(releaseCtLock(file, 'm-two'), /not by this migration: left alone/);
      assert.ok(existsSync(file));

      assert.match(releaseCtLock(file, 'm-one'), /released/);
      assert.equal(existsSync(file), false);
      // It was sent SIGTERM: wait until it is gone, for as long as the test's timeout allows.
      while (pidAlive(holder)) await new Promise((r) => setTimeout(r, 20));
      assert.equal(pidAlive(holder), false, 'the holder went with its lock');
      assert.equal(releaseCtLock(file, 'm-one'), 'no CT lock held');
    },
  );

  it('takes over a stale lock (its process is gone), as vzctl does', async () => {
    const file = ctLockFile(dir, '102');
    writeFileSync(file, '2147483646\nstopping\n');
    assert.deepEqual(await takeCtLock(file, 'm-three'), { held: true });
    assert.ok(heldBy(file, 'm-three'));
    releaseCtLock(file, 'm-three');
  });
});

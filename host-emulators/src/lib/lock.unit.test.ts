import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { acquireLock, markerName } from './lock.ts';

describe("the emulators' locks: one marker file per lock name", () => {
  it('names a marker by the name itself, encoded: no slash, never . or .., two names never one marker', () => {
    // Given names that differ only where a careless encoding would fold them together
    const names = [
      '/vz/a/DiskDescriptor.xml.lck',
      '/vz/a%2FDiskDescriptor.xml.lck',
      '.',
      '..',
      'io:/dev/ploop1',
    ];

    // When each gets its marker
    const markers = names.map(markerName);

    // Then every marker is one path component of its own, and no two are equal
    for (const m of markers) {
      assert.ok(!m.includes('/') && m !== '.' && m !== '..', m);
      assert.ok(m.length <= 241, m);
    }
    assert.equal(new Set(markers).size, names.length);
    assert.equal(markerName('/vz/a/DiskDescriptor.xml.lck'), '=%2Fvz%2Fa%2FDiskDescriptor.xml.lck');
  });

  it('names a marker by a digest when the encoded name would not fit in a file name', () => {
    // Given two long names that differ in their last character
    const long = `/${'d'.repeat(300)}/DiskDescriptor.xml.lck`;

    // When each gets its marker
    const [a, b] = [markerName(long), markerName(`${long}x`)];

    // Then both are digests (a '#', which no encoded name begins with), short, and different
    assert.match(a, /^#[0-9a-f]{40}$/);
    assert.match(b, /^#[0-9a-f]{40}$/);
    assert.notEqual(a, b);
  });

  it('holds a lock in its marker until released, and a second name is a second lock', () => {
    // Given a lock folder
    const dir = mkdtempSync(join(tmpdir(), 'haul-lock-'));
    try {
      // When one name is locked, then the same name again (briefly), then another name
      const release = acquireLock(dir, '/vz/a/DiskDescriptor.xml.lck', 1000);
      const again = acquireLock(dir, '/vz/a/DiskDescriptor.xml.lck', 50);
      const other = acquireLock(dir, '/vz/b/DiskDescriptor.xml.lck', 50);

      // Then the same name waits out its timeout, the other one is taken, and releasing removes the markers
      assert.ok(release);
      assert.equal(again, undefined);
      assert.ok(other);
      assert.equal(readdirSync(dir).length, 2);
      release();
      other();
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('a lock whose holder died', () => {
    /** The pid of a process that has ended. */
    const deadPid = (): number => spawnSync('true').pid;
    const name = '/vz/c/DiskDescriptor.xml.lck';

    it('is taken over: its marker then names the new holder', () => {
      // Given a marker left by a holder that died
      const dir = mkdtempSync(join(tmpdir(), 'haul-lock-'));
      try {
        writeFileSync(join(dir, markerName(name)), `${deadPid()} ${name}\n`);

        // When the lock is asked for
        const release = acquireLock(dir, name, 10_000);

        // Then it is held by this process, and nothing else is left in the folder
        assert.ok(release);
        assert.match(readFileSync(join(dir, markerName(name)), 'utf8'), new RegExp(`^${process.pid} `));
        assert.deepEqual(readdirSync(dir), [markerName(name)]);
        release();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('is not taken over while another waiter takes it over, and is once that waiter is found to have died', () => {
      // Given a dead holder's marker and another waiter taking it over (its .break: it reads the marker again and
      // removes it only if it still names the dead holder; without it both waiters would end up holding the lock)
      const dir = mkdtempSync(join(tmpdir(), 'haul-lock-'));
      try {
        const marker = join(dir, markerName(name));
        writeFileSync(marker, `${deadPid()} ${name}\n`);
        writeFileSync(`${marker}.break`, '');
        const soon = (Date.now() + 60_000) / 1000; // fresh whatever this machine's pauses: dated a minute ahead
        utimesSync(`${marker}.break`, soon, soon);

        // When the lock is asked for meanwhile
        const meanwhile = acquireLock(dir, name, 100);

        // Then it is not taken: the marker is left to the waiter breaking it
        assert.equal(meanwhile, undefined);
        assert.ok(readdirSync(dir).includes(markerName(name)));

        // When that .break is older than any take-over lasts (its waiter died in it), the lock is asked for again
        const old = (Date.now() - 10_000) / 1000;
        utimesSync(`${marker}.break`, old, old);
        const release = acquireLock(dir, name, 10_000);

        // Then it is taken, and the .break is gone
        assert.ok(release);
        assert.deepEqual(readdirSync(dir), [markerName(name)]);
        release();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
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
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomUuid } from './uuid.ts';

describe('randomUuid', () => {
  it('prints a random UUID as ploop does: lower-case hex in 8-4-4-4-12, version 4, the DCE variant', () => {
    // Given many UUIDs
    const made = Array.from({ length: 512 }, () => randomUuid());
    for (const u of made) {
      // Then each is in uuid2str's form with the bits uuid_new sets (ploop lib/uuid.c)
      assert.match(u, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    // And none repeats
    assert.equal(new Set(made).size, made.length);
    // And the random bits are not stuck: each of the 30 hex digits that are neither version nor variant takes more
    // than one value
    for (const i of [...Array(36).keys()].filter((k) => ![8, 13, 14, 18, 19, 23].includes(k)))
      assert.ok(new Set(made.map((u) => u[i])).size > 1, `digit ${i} never changes`);
  });
});

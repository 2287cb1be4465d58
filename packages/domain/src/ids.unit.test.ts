import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { copyGuid, guidFor, originGuid } from './ids.ts';

it('GUIDs are valid ploop GUIDs, deterministic, and distinct per migration, disk and role', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1 }), fc.nat(15), (mid, disk) => {
      const o = originGuid(mid, disk);
      assert.match(o, /^\{[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\}$/);
      assert.equal(o, originGuid(mid, disk));
      assert.notEqual(o, copyGuid(mid, disk));
      assert.notEqual(o, originGuid(mid, disk + 1));
    }),
  );
  assert.notEqual(guidFor('a'), guidFor('b'));
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadSchemaDocuments } from '@haul/schemas';
import { frozenLeaseCapMs, frozenLeaseMs, frozenLeaseSafetyFactor } from './frozen-lease.ts';

void describe('frozenLeaseMs', () => {
  void it('is the floor while the size or the rate of the final transfer is unknown', () => {
    assert.equal(frozenLeaseMs({ floorMs: 60_000 }), 60_000);
    assert.equal(frozenLeaseMs({ floorMs: 60_000, predictedBytes: 1e9 }), 60_000);
    assert.equal(frozenLeaseMs({ floorMs: 60_000, bytesPerSec: 1e8 }), 60_000);
  });

  void it('grows with the predicted transfer: a large final stream outlives a fixed 60 s', () => {
    // 8 GB at 100 MB/s: 80 s of streaming, more than the old fixed lease by itself.
    const lease = frozenLeaseMs({ floorMs: 60_000, predictedBytes: 8e9, bytesPerSec: 1e8 });
    assert.equal(lease, 60_000 + frozenLeaseSafetyFactor * 80_000);
    assert.ok(lease > 60_000 + 80_000);
  });

  void it('stops at the cap, which is the schema bound of a finalDump lease', () => {
    assert.equal(
      frozenLeaseMs({ floorMs: 60_000, predictedBytes: 1e12, bytesPerSec: 1e6 }),
      frozenLeaseCapMs,
    );
    assert.equal(frozenLeaseMs({ floorMs: 10 * frozenLeaseCapMs }), frozenLeaseCapMs);
    const steps = loadSchemaDocuments().find((d) => JSON.stringify(d).includes('"leaseMs"'));
    assert.ok(steps, 'a schema defines leaseMs');
    assert.match(JSON.stringify(steps), new RegExp(`"leaseMs":\\{[^}]*"maximum":${frozenLeaseCapMs}`));
  });

  void it('is a whole number of milliseconds (the schema wants an integer)', () => {
    assert.ok(Number.isInteger(frozenLeaseMs({ floorMs: 1000, predictedBytes: 12_345, bytesPerSec: 7 })));
  });
});

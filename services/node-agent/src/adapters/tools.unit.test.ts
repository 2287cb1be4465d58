import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseVzctlStatus } from './tools.ts';

void describe('parseVzctlStatus', () => {
  void it('reads a paused CT as running and paused, not as down', () => {
    assert.deepEqual(parseVzctlStatus('VEID 101 exist mounted paused\n'), {
      exist: true,
      mounted: true,
      running: true,
      paused: true,
    });
  });

  void it('reads running, down and suspended as vzctl prints them (VZ7 and later)', () => {
    assert.deepEqual(parseVzctlStatus('VEID 101 exist mounted running\n'), {
      exist: true,
      mounted: true,
      running: true,
      paused: false,
    });
    for (const line of [
      'VEID 101 exist unmounted down',
      'VEID 101 exist unmounted suspended',
      'VEID 101 exist unmounted down suspended',
    ])
      assert.deepEqual(parseVzctlStatus(line), {
        exist: true,
        mounted: false,
        running: false,
        paused: false,
      });
    assert.equal(parseVzctlStatus('VEID 101 deleted unmounted down').exist, false);
  });
});

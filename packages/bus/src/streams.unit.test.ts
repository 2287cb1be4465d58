import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { casSafe } from './streams.ts';

describe('casSafe: the servers haul replicates its streams on', () => {
  it('refuses a replicated stream before 2.9.21, where two appends expecting the same sequence could both land', () => {
    for (const v of ['2.9.10', '2.9.20', '2.9.21-RC.1', 'v2.9.10', '2.8.4', '1.99.99', undefined, 'unknown'])
      assert.equal(casSafe(v, 3), false, String(v));
  });
  it('takes it from 2.9.21 on, and any server for one replica', () => {
    for (const v of ['2.9.21', '2.9.25', '2.10.0', '2.10.27', '2.15.1', '3.0.0', 'v2.11.0-RC.1'])
      assert.equal(casSafe(v, 3), true, v);
    for (const v of ['2.9.10', undefined]) assert.equal(casSafe(v, 1), true, String(v));
  });
});

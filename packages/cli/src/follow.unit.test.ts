import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TransferProgress } from '@haul/schemas';
import { transferLine } from './follow.ts';

const report: TransferProgress = {
  migrationId: 'm-cli-0001',
  commandId: 'm-cli-0001:streamImages:2:1',
  node: 'node-a',
  time: '2026-01-01T00:00:10.000Z',
  bytesDone: 12_000_000,
  bytesTotal: 48_000_000,
  mbPerSec: 40,
  etaMs: 900,
  movedAt: '2026-01-01T00:00:10.000Z',
};

describe("a transfer's report in the live view of `haul migrate`", () => {
  it('shows its bytes, rate and ETA while it moves', () => {
    assert.equal(
      transferLine(report, { phase: 'pre-dump 3' }),
      '[pre-dump 3] 12.0/48.0 MB at 40 MB/s, ETA 0.9 s',
    );
  });
  it('says what it waits for while it waits on purpose', () => {
    const since = '2026-01-01T00:00:05.000Z';
    const line = (reason: 'priority' | 'slot' | 'sync') =>
      transferLine({ ...report, waiting: { reason, since } }, { phase: 'pre-dump 3' });
    assert.equal(line('priority'), '[pre-dump 3] 12.0/48.0 MB, waits for the final-dump transfer');
    assert.equal(line('slot'), '[pre-dump 3] 12.0/48.0 MB, waits for a transfer slot');
    assert.equal(line('sync'), '[pre-dump 3] 12.0/48.0 MB, all sent; the receiver verifies and syncs');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createOutput, fit, formatDuration, renderTable, type Column } from './output.ts';

const columns: Column[] = [
  { key: 'id', header: 'MIGRATION' },
  { key: 'took', header: 'DURATION', align: 'right' },
  { key: 'reason', header: 'REASON', shrink: true },
];
const rows = [
  { id: 'm-1', took: '1.5s', reason: 'snapshotCopy:1 failed: ploop snapshot exited with 156' },
  { id: 'm-22', took: '12m05s', reason: '' },
];

describe('tables and lines for people', () => {
  it('a table has a header row and columns padded to their widest cell', () => {
    assert.deepEqual(renderTable(rows, columns, Infinity), [
      'MIGRATION  DURATION  REASON',
      'm-1            1.5s  snapshotCopy:1 failed: ploop snapshot exited with 156',
      'm-22         12m05s',
    ]);
  });
  it('a table wider than the terminal gives up width in its shrinkable columns, never wraps', () => {
    const lines = renderTable(rows, columns, 40);
    assert.ok(lines.every((l) => l.length <= 40));
    assert.equal(lines[1], 'm-1            1.5s  snapshotCopy:1 fai…');
    // Still too narrow once the shrinkable columns are at their least: the lines are cut.
    assert.ok(renderTable(rows, columns, 12).every((l) => l.length <= 12));
  });
  it('lines are cut to the width with an ellipsis', () => {
    assert.equal(fit('abcdef', 4), 'abc…');
    assert.equal(fit('abc', 4), 'abc');
  });
  it('the width is the terminal’s, or COLUMNS, or none for a pipe', () => {
    const sink = (isTTY: boolean, columns?: number) => ({ write: () => true, isTTY, columns });
    assert.equal(createOutput(sink(true, 100), {}).width, 100);
    assert.equal(createOutput(sink(false), {}).width, Infinity);
    assert.equal(createOutput(sink(false), { COLUMNS: '60' }).width, 60);
  });
  it('durations read at a glance', () => {
    assert.equal(formatDuration(850), '850ms');
    assert.equal(formatDuration(12_340), '12.3s');
    assert.equal(formatDuration(245_000), '4m05s');
    assert.equal(formatDuration(7_620_000), '2h07m');
    assert.equal(formatDuration(undefined), '-');
  });
});

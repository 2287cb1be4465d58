import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { MigrationStatus } from '@haul/schemas';
import { renderTable } from '../output.ts';
import { columns, rowOf } from './ls.ts';

const status = (more: Partial<MigrationStatus>): MigrationStatus => ({
  migrationId: 'm-3f9a04c1d2b7e8a90c1d2e3f',
  ctid: '101',
  source: 'node-a',
  target: 'node-b',
  mode: 'live',
  phase: 'iterating',
  iteration: 1,
  updatedAt: new Date().toISOString(),
  lastSeq: 9,
  ...more,
});

it('ls: a BY column names who requested each migration, - when the request was unsigned', () => {
  const [header, signed, unsigned] = renderTable(
    [rowOf(status({ requestedBy: 'scheduler' })), rowOf(status({}))],
    columns,
    Infinity,
  );
  const at = header!.indexOf('BY');
  assert.ok(at > header!.indexOf('PHASE'));
  assert.equal(signed!.slice(at).split(/\s+/)[0], 'scheduler');
  assert.equal(unsigned!.slice(at).split(/\s+/)[0], '-');
});

it('ls: a long requester name is cut in its column, so the table still fits the terminal with every column', () => {
  const rows = [
    rowOf(status({ requestedBy: 'streamer@node-with-a-very-long-name', reason: 'x'.repeat(40) })),
  ];
  const [header, row] = renderTable(rows, columns, 120);
  assert.ok(header!.length <= 120 && row!.length <= 120);
  assert.match(header!, /BY .*REASON$/);
  assert.match(row!, /streamer@node-\S*… /);
});

import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { MigrationStatus, StatusReply } from '@haul/schemas';
import type { Context } from './command.ts';
import { knownStatus, whoAskedLines } from './operator.ts';

/** A context whose coordinator answers every status request with `reply`; what the command says is kept. */
function contextAnswering(reply: StatusReply) {
  const said: string[] = [];
  const asked: string[] = [];
  const api = { status: (id: string) => (asked.push(id), Promise.resolve(reply)) };
  const ctx = { say: (s: string) => said.push(s), api: () => Promise.resolve(api) } as unknown as Context;
  return { ctx, said, asked };
}

it("knownStatus: the coordinator's answer for a migration it knows, saying nothing", async () => {
  const reply: StatusReply = { ok: true };
  const { ctx, said, asked } = contextAnswering(reply);
  assert.equal(await knownStatus(ctx, 'm-1'), reply);
  assert.deepEqual(asked, ['m-1']);
  assert.deepEqual(said, []);
});

it('knownStatus: undefined for a migration the coordinator does not know, with its code and message said', async () => {
  const { ctx, said } = contextAnswering({
    ok: false,
    error: { code: 'HAUL_NOT_FOUND', message: 'no such migration' },
  });
  assert.equal(await knownStatus(ctx, 'm-2'), undefined);
  assert.deepEqual(said, ['haul: HAUL_NOT_FOUND: no such migration']);
});

const status = (more: Partial<MigrationStatus>): MigrationStatus => ({
  migrationId: 'm-1',
  ctid: '101',
  source: 'a',
  target: 'b',
  mode: 'live',
  phase: 'rollback',
  iteration: 1,
  updatedAt: '2026-01-01T01:00:00.000Z',
  lastSeq: 9,
  ...more,
});

it('whoAskedLines: who requested the migration, then who cancelled, retried or resolved it, each with why', () => {
  const at = '2026-01-01T01:00:00.000Z';
  const s = status({
    requestedBy: 'scheduler',
    requestReason: 'rebalance',
    operatorActions: [
      { kind: 'cancel', requestedBy: 'ops', reason: 'window over', at },
      { kind: 'retry', action: 'mergeOrigin:1', requestedBy: 'ops', reason: 'disk fixed', at },
      { kind: 'resolve', action: 'mergeOrigin:1', reason: 'merged by hand', at },
    ],
  });
  assert.deepEqual(whoAskedLines(s), [
    'requested by scheduler: rebalance',
    'cancelled by ops: window over',
    'retried mergeOrigin:1 by ops: disk fixed',
    'resolved mergeOrigin:1 by an unknown identity (unsigned request): merged by hand',
  ]);
});

it('whoAskedLines: nothing for a status that names no requester, reason or action', () => {
  assert.deepEqual(whoAskedLines(status({})), []);
});

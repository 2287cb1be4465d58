import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { StatusReply } from '@haul/schemas';
import type { Context } from './command.ts';
import { knownStatus } from './operator.ts';

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

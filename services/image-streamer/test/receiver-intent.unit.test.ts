import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent, StepCommand, StreamOffer } from '@haul/schemas';
import { offeredIntent } from '../src/receiver.ts';

const mid = 'm-intent00000000000000001';
const commandId = `${mid}:streamImages:0:1`;
const command: StepCommand = {
  commandId,
  migrationId: mid,
  node: 'node-a',
  executor: 'streamer',
  attempt: 1,
  step: 'streamImages',
  args: { toNode: 'node-b', sourceDir: '/vz/dump/a', targetDir: '/vz/dump/b', priority: 'iteration' },
  timeoutMs: 60_000,
};
const event = (type: MigrationEvent['type'], data: unknown, n: number): MigrationEvent =>
  ({
    eventId: `${mid}:${n}`,
    migrationId: mid,
    type,
    actor: { service: 'coordinator', node: 'coordinator' },
    time: '2026-12-01T00:00:00.000Z',
    schemaVersion: 1,
    data,
  }) as MigrationEvent;
const intended = (cmd: StepCommand) => event('StepIntended', cmd, 1);
const offer: StreamOffer = {
  transferId: commandId,
  migrationId: mid,
  fromNode: 'node-a',
  targetDir: '/vz/dump/b',
  connect: { host: '127.0.0.1', port: 4000, token: 'ab'.repeat(16) },
  manifest: [{ path: 'pages-1.img', kind: 'file', size: 4096 }],
};
const refusal = (events: MigrationEvent[], o = offer) => {
  const r = offeredIntent(events, o, 'node-b');
  return r && [r.error.code, r.error.field];
};

describe("an offer against its migration's log (offeredIntent)", () => {
  it('is taken when an open intent sends that transfer from its node to this one, into its folder', () => {
    assert.equal(offeredIntent([intended(command)], offer, 'node-b'), undefined);
  });

  it('is refused without such an intent, naming the field that differs', () => {
    const code = 'HAUL_OFFER_NOT_INTENDED';
    assert.deepEqual(refusal([]), [code, 'transferId']);
    assert.deepEqual(refusal([intended({ ...command, node: 'node-c' })]), [code, 'fromNode']);
    assert.deepEqual(refusal([intended({ ...command, args: { ...command.args, toNode: 'node-c' } })]), [
      code,
      'transferId',
    ]);
    assert.deepEqual(refusal([intended(command)], { ...offer, targetDir: '/vz/private/101' }), [
      code,
      'targetDir',
    ]);
    // An agent's step of that id is no transfer
    const agentStep = { ...command, executor: 'agent', step: 'finalDump' } as unknown as StepCommand;
    assert.deepEqual(refusal([intended(agentStep)]), [code, 'transferId']);
  });

  it('is refused once the transfer has an outcome, or its migration ended', () => {
    const failed = event('StepFailed', { commandId, step: 'streamImages', node: 'node-a', attempt: 1 }, 2);
    assert.deepEqual(refusal([intended(command), failed]), ['HAUL_OFFER_NOT_INTENDED', 'transferId']);
    const over = event('MigrationRolledBack', {}, 2);
    assert.deepEqual(refusal([intended(command), over]), ['HAUL_OFFER_NOT_INTENDED', 'transferId']);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StepCommand } from '@haul/schemas';
import { misaddressed } from './addressing.ts';

const cmd: StepCommand = {
  commandId: 'm-a:streamImages:1:1',
  migrationId: 'm-a',
  node: 'node-a',
  executor: 'streamer',
  attempt: 1,
  step: 'streamImages',
  timeoutMs: 1000,
  args: { toNode: 'node-b', sourceDir: '/a', targetDir: '/b', priority: 'final' },
};

describe('misaddressed: whether a command handed to an executor is its to run', () => {
  it('given its addressee, with a handler, then nothing is wrong', () => {
    assert.equal(misaddressed(cmd, { node: 'node-a', executor: 'streamer' }, true), undefined);
  });
  it('given another node, the other executor, or no handler, then HAUL_WRONG_EXECUTOR naming the field', () => {
    const field = (node: string, executor: 'agent' | 'streamer', handles: boolean) => {
      const e = misaddressed(cmd, { node, executor }, handles);
      assert.equal(e?.code, 'HAUL_WRONG_EXECUTOR');
      return e?.field;
    };
    assert.equal(field('node-b', 'streamer', true), 'node');
    assert.equal(field('node-a', 'agent', true), 'executor');
    assert.equal(field('node-a', 'streamer', false), 'step');
  });
});

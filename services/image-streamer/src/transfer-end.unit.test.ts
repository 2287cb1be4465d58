import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { transferEndOf } from './app.ts';

type Cmd = Parameters<typeof transferEndOf>[0];
const args = {
  sourceDir: '/vz/private/101/root.hdd',
  targetDir: '/vz/private/101/root.hdd',
  toNode: 'node-b',
};
const command = (step: Cmd['step'], pass?: { index: number; final: boolean }): Cmd =>
  ({
    commandId: `m-1:${step}:0:node-a:streamer:1`,
    migrationId: 'm-1',
    node: 'node-a',
    executor: 'streamer',
    attempt: 1,
    step,
    timeoutMs: 60_000,
    args: { ...args, ...(pass ? { pass } : {}) },
  }) as Cmd;

describe('how a transfer ends on the target', () => {
  it('given a live pass of a local disk, then it is not synced before done, and its writeback starts after', () => {
    assert.deepEqual(transferEndOf(command('copyLocalDisk', { index: 0, final: false })), {
      durable: false,
      writeBack: true,
    });
  });

  it('given the frozen pass of a local disk (or a one-pass copy), then every file is synced before done', () => {
    const end = { durable: true, writeBack: false };
    assert.deepEqual(transferEndOf(command('copyLocalDisk', { index: 2, final: true })), end);
    assert.deepEqual(transferEndOf(command('copyLocalDisk')), end);
  });

  it('given an image folder, then neither: a restore after a reboot of the target is refused anyway', () => {
    assert.deepEqual(transferEndOf(command('streamImages')), { durable: false, writeBack: false });
  });
});

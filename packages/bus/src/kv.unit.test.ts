import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { KV } from '@nats-io/kv';
import { keysOf } from './kv.ts';

it('keysOf: each key once, though the bucket’s key reader delivers a key written while it reads again', async () => {
  // As KV.keys() does when node-a beats during the read: its key first as it was, then as just written.
  const kv = { keys: () => Promise.resolve(['node-a', 'node-b', 'node-a']) };
  assert.deepEqual(await keysOf(kv as unknown as Pick<KV, 'keys'>), ['node-a', 'node-b']);
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JetStreamApiError } from '@nats-io/jetstream';
import { ensureDurable, type DurableConsumers } from './durable.ts';

/** The server's answer to a create of a durable that exists with another configuration (nats-server ≥ 2.10). */
const alreadyExists = () =>
  new JetStreamApiError({ code: 400, err_code: 10148, description: 'consumer already exists' });

/** A stand-in for a JetStreamManager's consumers: what was asked, and what `add` answers. */
function consumers(addFails?: () => Error) {
  const calls: string[] = [];
  const api: DurableConsumers = {
    add: (stream, cfg) => {
      calls.push(`add ${stream} ${cfg.durable_name} ${cfg.max_ack_pending}`);
      return addFails ? Promise.reject(addFails()) : Promise.resolve({});
    },
    update: (stream, durable, cfg) => {
      calls.push(`update ${stream} ${durable} ${cfg.max_ack_pending}`);
      return Promise.resolve({});
    },
  };
  return { api, calls };
}

const cfg = { durable_name: 'agent-node-a', max_ack_pending: 1 };

describe('a durable consumer, made or brought to its configuration (ensureDurable)', () => {
  it('is created when the server takes the create (a new durable, or nats-server 2.9, which updates on create)', async () => {
    const c = consumers();
    await ensureDurable({ consumers: c.api }, 'HAUL_COMMANDS', cfg);
    assert.deepEqual(c.calls, ['add HAUL_COMMANDS agent-node-a 1']);
  });

  it('is updated when the server refuses the create of a durable that exists with another configuration', async () => {
    const c = consumers(alreadyExists);
    await ensureDurable({ consumers: c.api }, 'HAUL_COMMANDS', cfg);
    assert.deepEqual(c.calls, ['add HAUL_COMMANDS agent-node-a 1', 'update HAUL_COMMANDS agent-node-a 1']);
  });

  it('passes any other refusal on, untouched', async () => {
    const other = () =>
      new JetStreamApiError({ code: 404, err_code: 10059, description: 'stream not found' });
    const c = consumers(other);
    await assert.rejects(
      ensureDurable({ consumers: c.api }, 'HAUL_COMMANDS', cfg),
      (err: unknown) => err instanceof JetStreamApiError && err.code === 10059,
    );
    assert.deepEqual(c.calls, ['add HAUL_COMMANDS agent-node-a 1']);
  });
});

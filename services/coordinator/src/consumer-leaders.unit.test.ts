import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ledFromStaleReplica } from './consumer-leaders.ts';

// What the soak's cluster reported while node-c's agent received nothing (22:17:55, nats-server 2.9.10).
const stream = {
  leader: 'n1',
  replicas: [
    { name: 'n2', current: false, lag: 243 },
    { name: 'n3', current: true },
  ],
};

describe('a command consumer led from a stream replica that is behind', () => {
  it('given the stream led by n1 with n2 behind, when a consumer is led by n2, then it must step down', () => {
    assert.equal(ledFromStaleReplica(stream, { leader: 'n2' }), true);
  });
  it('given the same stream, when a consumer is led by the stream leader or a current replica, then it stays', () => {
    assert.equal(ledFromStaleReplica(stream, { leader: 'n1' }), false);
    assert.equal(ledFromStaleReplica(stream, { leader: 'n3' }), false);
  });
  it('given one server (no cluster info) or no known leader, then nothing is judged stale', () => {
    assert.equal(ledFromStaleReplica(undefined, { leader: 'n2' }), false);
    assert.equal(ledFromStaleReplica(stream, undefined), false);
    assert.equal(ledFromStaleReplica(stream, {}), false);
  });
});

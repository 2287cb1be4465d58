import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTransient } from './errors.ts';

/** An error shaped as nats.js's JetStreamApiError: its message is the server's description. */
const apiError = (message: string, code: number) => Object.assign(new Error(message), { code });

describe('isTransient', () => {
  it('given a cluster still forming, when an R3 stream cannot be placed yet, then the call is retried', () => {
    assert.equal(isTransient(apiError('no suitable peers for placement', 10005)), true);
  });
  it('given a leader election, then no responders and 503 are retried', () => {
    assert.equal(isTransient(apiError('no responders', 503)), true);
    assert.equal(isTransient({ name: 'JetStreamNotEnabled', message: '' }), true);
  });
  it('given a refusal that stays true, then it passes through at once', () => {
    assert.equal(
      isTransient(apiError('stream name already in use with a different configuration', 10058)),
      false,
    );
    assert.equal(isTransient(apiError('wrong last sequence: 4', 10071)), false);
  });
});

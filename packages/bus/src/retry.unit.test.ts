import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ClosedConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
} from '@nats-io/nats-core';
import { BusUnavailableError, isConnectionGone, isTransient } from './errors.ts';
import { retryTransient } from './retry.ts';

/** A call that fails with each of `errors` in turn, then answers 'ok'; `calls` counts how often it was made. */
function failing(...errors: Error[]): { fn: () => Promise<string>; calls: () => number } {
  let n = 0;
  return {
    fn: () => {
      const err = errors[n++];
      return err ? Promise.reject(err) : Promise.resolve('ok');
    },
    calls: () => n,
  };
}

describe('retryTransient and a connection this process closed', () => {
  it('given a leader election, when the call fails with no responders and then answers, then it was retried', async () => {
    const f = failing(
      new RequestError('no responders', { cause: new NoRespondersError('$JS.API.STREAM.INFO.x') }),
    );
    assert.equal(await retryTransient(f.fn), 'ok');
    assert.equal(f.calls(), 2);
  });

  for (const [what, err] of [
    ['closed', new ClosedConnectionError()],
    ['draining', new DrainingConnectionError()],
    ['closed with a request in flight', new RequestError('connection closed')],
    [
      'closed, wrapped by haul',
      new BusUnavailableError('append failed', { cause: new ClosedConnectionError() }),
    ],
  ] as const) {
    it(`given a connection ${what}, then the call is made once and its error passes through`, async () => {
      const f = failing(err, err, err);
      await assert.rejects(retryTransient(f.fn), (e) => e === err);
      assert.equal(f.calls(), 1);
      // Still a failure of the bus, not a refusal: a command whose handler failed so is delivered again.
      assert.equal(isTransient(err), true);
      assert.equal(isConnectionGone(err), true);
    });
  }

  it('given a request that timed out or a disconnect, then the connection is not gone', () => {
    assert.equal(isConnectionGone(new RequestError('timeout')), false);
    assert.equal(
      isConnectionGone(Object.assign(new Error('disconnected'), { name: 'ConnectionError' })),
      false,
    );
    assert.equal(isConnectionGone('closed connection'), false);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ClosedConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
} from '@nats-io/nats-core';
import { BusUnavailableError, isConnectionGone, isTransient } from './errors.ts';
import { readAgainUntil, retryTransient } from './retry.ts';
import { limits } from './conventions.ts';

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

describe('readAgainUntil: a read whose absence of an intent decides a refusal', () => {
  /** Reads that answer each of `answers` in turn (the last one from then on), counted. */
  const reads = (...answers: boolean[]) => {
    let n = 0;
    return { read: () => Promise.resolve(answers[Math.min(n++, answers.length - 1)]!), count: () => n };
  };
  const waitsMs = [1, 1, 1];

  it('given a first read that shows it, reads once and waits for nothing', async () => {
    const r = reads(true);
    assert.deepEqual(await readAgainUntil(r.read, (x) => x, { waitsMs }), { read: true, reads: 1 });
  });

  it('given reads behind (a stream leader that has not applied the intent), reads until one shows it', async () => {
    const r = reads(false, false, true);
    assert.deepEqual(await readAgainUntil(r.read, (x) => x, { waitsMs }), { read: true, reads: 3 });
  });

  it('given no read ever shows it, returns the last read after one read per wait and the first', async () => {
    const r = reads(false);
    assert.deepEqual(await readAgainUntil(r.read, (x) => x, { waitsMs }), { read: false, reads: 4 });
  });

  it('given a stop during a wait, returns nothing and reads no more', async () => {
    const r = reads(false);
    const ac = new AbortController();
    const got = readAgainUntil(r.read, (x) => x, { waitsMs: [60_000], signal: ac.signal });
    ac.abort();
    assert.equal(await got, undefined);
    assert.equal(r.count(), 1);
  });

  it('by default waits as limits.intentReadAgainMs says: less in all than an offer waits for its answer', () => {
    const total = limits.intentReadAgainMs.reduce((a, b) => a + b, 0);
    assert.ok(total < limits.streamOfferTimeoutMs / 2, `${total} ms`);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NoRespondersError, RequestError, TimeoutError } from '@nats-io/nats-core';
import { JetStreamApiError } from '@nats-io/jetstream';
import { JetStreamStatusError, jserrors } from '@nats-io/jetstream/internal';
import { BusUnavailableError, isNoSuitablePeers, isTransient, isWrongLastSequence } from './errors.ts';

/** nats.js's error for a JetStream API answer: `code` the HTTP-like status, `err_code` the server's own code. */
const apiError = (description: string, errCode: number, status = 400) =>
  new JetStreamApiError({ code: status, err_code: errCode, description });
/** What a JetStream API call raises while no server answers its subject (a leader election), as nats.js nests it. */
const electing = () =>
  new jserrors.JetStreamNotEnabled('jetstream is not enabled', {
    cause: new RequestError("no responders: '$JS.API.STREAM.INFO.x'", {
      cause: new NoRespondersError('$JS.API.STREAM.INFO.x'),
    }),
  });

describe('isNoSuitablePeers', () => {
  it('given too few servers for the replicas (10005), also as a cause, then yes; any other refusal, no', () => {
    const noPeers = apiError('no suitable peers for placement', 10005);
    assert.equal(isNoSuitablePeers(noPeers), true);
    assert.equal(isNoSuitablePeers(new Error('creating HAUL_EVENTS', { cause: noPeers })), true);
    assert.equal(isNoSuitablePeers(apiError('JetStream system temporarily unavailable', 10008, 503)), false);
    assert.equal(isNoSuitablePeers(new TimeoutError()), false);
  });
});

describe('isTransient', () => {
  it('given a cluster still forming, when an R3 stream cannot be placed yet, then the call is retried', () => {
    assert.equal(isTransient(apiError('no suitable peers for placement', 10005)), true);
  });
  it('given a leader election, then no responders, a timeout and an unavailable JetStream are retried', () => {
    assert.equal(isTransient(electing()), true);
    assert.equal(isTransient(new RequestError('no responders', { cause: new NoRespondersError('x') })), true);
    assert.equal(isTransient(new TimeoutError()), true);
    assert.equal(isTransient(new JetStreamStatusError('Request Timeout', 408)), true);
    assert.equal(isTransient(apiError('JetStream system temporarily unavailable', 10008, 503)), true);
  });
  it('given a wrapped transient error, then its cause makes it transient', () => {
    assert.equal(isTransient(new Error('reading the log', { cause: new TimeoutError() })), true);
  });
  it('given a refusal that stays true, then it passes through at once', () => {
    assert.equal(
      isTransient(apiError('stream name already in use with a different configuration', 10058)),
      false,
    );
    assert.equal(isTransient(apiError('wrong last sequence: 4', 10071)), false);
    assert.equal(isTransient(new JetStreamStatusError('Not Found', 404)), false);
  });
  it("given an error of no bus class, then its message's words do not make it transient", () => {
    assert.equal(isTransient(new Error('timeout waiting for the CT')), false);
    assert.equal(isTransient(new Error('the transfer was closed by its peer')), false);
    assert.equal(isTransient(new Error('no responders')), false);
  });
  it("given haul's own bus errors, then each says itself", () => {
    assert.equal(isTransient(new BusUnavailableError('down')), true);
  });
});

describe('isWrongLastSequence', () => {
  it("given the server's answer to a compare-and-set that lost, then it is a lost race", () => {
    assert.equal(isWrongLastSequence(apiError('wrong last sequence: 4', 10071)), true);
  });
  it('given any other answer or a message alone, then it is not', () => {
    assert.equal(isWrongLastSequence(apiError('stream not found', 10059, 404)), false);
    assert.equal(isWrongLastSequence(new Error('wrong last sequence: 4')), false);
  });
});

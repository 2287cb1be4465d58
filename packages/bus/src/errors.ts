import { ClosedConnectionError, DrainingConnectionError, RequestError } from '@nats-io/nats-core';

/** Infrastructure errors on the bus, each with a stable code and whether retrying can help. */
export class BusError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(code: string, message: string, retryable: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BusError';
    this.code = code;
    this.retryable = retryable;
  }
}

/** An append with an expected last subject sequence lost the race: someone else appended first. */
export class ConcurrencyConflictError extends BusError {
  readonly expectedSeq: number;
  constructor(subject: string, expectedSeq: number, options?: ErrorOptions) {
    super('HAUL_CONCURRENCY_CONFLICT', `${subject}: last sequence is not ${expectedSeq}`, false, options);
    this.name = 'ConcurrencyConflictError';
    this.expectedSeq = expectedSeq;
  }
}

/** NATS cannot be reached (or has no JetStream leader) right now. */
export class BusUnavailableError extends BusError {
  constructor(message: string, options?: ErrorOptions) {
    super('HAUL_BUS_UNAVAILABLE', message, true, options);
    this.name = 'BusUnavailableError';
  }
}

/** The JetStream API code for "wrong last sequence". */
export const jsWrongLastSequence = 10071;

export function isWrongLastSequence(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: unknown }; message?: unknown };
  return (
    e?.code === jsWrongLastSequence ||
    e?.api_error?.err_code === jsWrongLastSequence ||
    (typeof e?.message === 'string' && e.message.includes('wrong last sequence'))
  );
}

/** Errors a caller should retry: no responders / no leader during an election, timeouts, disconnects. */
export function isTransient(err: unknown): boolean {
  if (err instanceof BusError) return err.retryable;
  // A closed or draining connection is the bus failing this process, not a refusal of what was asked.
  if (isConnectionGone(err)) return true;
  const e = err as { name?: unknown; code?: unknown; message?: unknown };
  const msg = typeof e?.message === 'string' ? e.message : '';
  return (
    e?.name === 'JetStreamNotEnabled' ||
    e?.name === 'NoRespondersError' ||
    e?.name === 'TimeoutError' ||
    e?.name === 'ConnectionError' ||
    e?.code === 503 ||
    e?.code === '503' ||
    /no responders|timeout|jetstream is not enabled|disconnect|closed/i.test(msg) ||
    // A cluster still forming: its meta leader does not know enough servers yet to place an R3 stream (JetStream
    // API error 10005). Seen when a service starts with the servers (the 3-server cluster test, a whole cluster
    // brought up at once); a cluster that truly lacks servers still fails once the retry budget is spent.
    /no suitable peers for placement/i.test(msg)
  );
}

/**
 * The connection is closed or draining (this process's shutdown, or nats.js gave up reconnecting): nothing sent on
 * it will be answered again, so retrying in this process cannot help. It is still a failure of the bus, not a refusal
 * (isTransient stays true): a command whose handler failed this way is delivered again, to the next process. nats.js
 * rejects a call on such a connection with ClosedConnectionError or DrainingConnectionError, and a request that was
 * in flight when it closed with a RequestError "connection closed" (MuxSubscription.close); a wrapped one is found
 * through its causes.
 */
export function isConnectionGone(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++, e = e.cause) {
    if (e instanceof ClosedConnectionError || e instanceof DrainingConnectionError) return true;
    if (e instanceof RequestError && e.message === 'connection closed') return true;
  }
  return false;
}

import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from '@nats-io/nats-core';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
// The classes nats.js throws but does not export from its main entry: its own `internal` entry point has them.
import { JetStreamStatusError, jserrors } from '@nats-io/jetstream/internal';

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

/** A compare-and-set append (an event, a KV update at a revision) lost: the subject's last sequence was another. */
export function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;
}

/**
 * A create of a durable consumer that exists with another configuration (nats-server's errors.json,
 * JSConsumerAlreadyExists 10148: "action CREATE is used for a existing consumer with a different config"). Servers
 * from 2.10 on answer so; 2.9 has no create action and updates the consumer instead.
 */
const jsConsumerAlreadyExists = 10148;
export function isConsumerConfigConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === jsConsumerAlreadyExists;
}

/**
 * JetStream API errors that say "not now" (nats-server's errors.json): a cluster still forming, whose meta leader
 * does not know enough servers yet to place an R3 stream (10005, "no suitable peers for placement", seen when a
 * service starts with the servers: the 3-server cluster test, a whole cluster brought up at once); and any the
 * server answers with HTTP-like status 503, "unavailable" (10008, JetStream system temporarily unavailable). A
 * cluster that truly lacks servers still fails once the retry budget is spent.
 */
const jsNoSuitablePeers = 10005;
const notNow = (e: JetStreamApiError): boolean => e.code === jsNoSuitablePeers || e.status === 503;

/** The server found too few servers of its JetStream cluster to hold a stream's replicas (10005, above). */
export function isNoSuitablePeers(err: unknown): boolean {
  for (const e of causes(err))
    if (e instanceof JetStreamApiError && e.code === jsNoSuitablePeers) return true;
  return false;
}

/**
 * Errors a caller should retry: the bus failing for a moment (a leader election, a timeout, a disconnect), never a
 * refusal of what was asked. Each is told by nats.js's own class, anywhere on the `cause` chain: a request that
 * found no responders is a RequestError caused by a NoRespondersError, and a JetStream API call that found none
 * during an election is a JetStreamNotEnabled caused by that RequestError. Nothing is told by its message's words:
 * "timeout" or "closed" in a refusal's text made it look transient before.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof BusError) return err.retryable;
  // A closed or draining connection is the bus failing this process, not a refusal of what was asked.
  if (isConnectionGone(err)) return true;
  for (const e of causes(err))
    if (
      e instanceof TimeoutError ||
      e instanceof NoRespondersError ||
      e instanceof ConnectionError ||
      e instanceof jserrors.JetStreamNotEnabled ||
      (e instanceof RequestError && e.isNoResponders()) ||
      // A pull's status: 503 no responders, 408 its request timed out.
      (e instanceof JetStreamStatusError && (e.code === 503 || e.code === 408)) ||
      (e instanceof JetStreamApiError && notNow(e))
    )
      return true;
  return false;
}

/** An error and its causes, innermost last (at most 8: a cause chain is never deeper in nats.js or here). */
function* causes(err: unknown): Generator<Error> {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++, e = e.cause) yield e;
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
  for (const e of causes(err)) {
    if (e instanceof ClosedConnectionError || e instanceof DrainingConnectionError) return true;
    if (e instanceof RequestError && e.message === 'connection closed') return true;
  }
  return false;
}

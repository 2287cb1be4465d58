import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { DeadLetter } from '@haul/schemas';
import { limits, subjects } from './conventions.ts';
import { encodeJson } from './kv.ts';
import { retryTransient } from './retry.ts';

/** A message a service parked instead of handling it (schemas/json/dead-letter.schema.json). */
export type { DeadLetter };

const dec = new TextDecoder();

/**
 * Parking: a message that cannot be decoded or handled is recorded in HAUL_DEAD_LETTERS (haul.dead.<service>.<node>)
 * and then acked by the caller, so it is never redelivered forever and never holds back the messages behind it.
 * The stream is the durable record (ops read it with `nats stream view`); `count` is this process's counter for its
 * discovery stats.
 */
export function createParking(nc: NatsConnection, service: string, node: string) {
  const js = jetstream(nc);
  let count = 0;
  return {
    get count(): number {
      return count;
    },
    async park(msg: { subject: string; seq?: number; data: Uint8Array }, reason: string): Promise<void> {
      count++;
      const cut = msg.data.length > limits.deadLetterPayloadBytes;
      const letter: DeadLetter = {
        service,
        node,
        subject: msg.subject,
        ...(msg.seq !== undefined ? { seq: msg.seq } : {}),
        reason: reason.slice(0, 4096),
        payload: dec.decode(cut ? msg.data.subarray(0, limits.deadLetterPayloadBytes) : msg.data),
        payloadBytes: msg.data.length,
        truncated: cut,
        parkedAt: new Date().toISOString(),
      };
      await retryTransient(() => js.publish(subjects.deadLetters(service, node), encodeJson(letter)));
    },
  };
}

export type Parking = ReturnType<typeof createParking>;

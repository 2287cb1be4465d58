import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Msg, NatsConnection, Subscription, SubscriptionOptions } from '@nats-io/transport-node';
import { pino } from 'pino';
import { subjects } from '@haul/bus';
import { createApi } from './api.ts';

/** A connection whose server refuses the subscription to `refused` (a permission taken away), as nats.js tells it. */
function refusing(refused: string): NatsConnection {
  const sub = { unsubscribe: () => undefined } as unknown as Subscription;
  return {
    subscribe(subject: string, opts?: SubscriptionOptions): Subscription {
      if (subject === refused)
        queueMicrotask(() => {
          void opts?.callback?.(
            new Error(`Permissions Violation for Subscription to "${subject}"`),
            {} as unknown as Msg,
          );
        });
      return sub;
    },
  } as unknown as NatsConnection;
}

describe('the scheduler API', () => {
  it('fails once the server refuses one of its subscriptions, naming the subject (the coordinator then exits)', async () => {
    const pm = { meta: () => ({ actor: { service: 'coordinator', node: 'c1' } }), active: new Set() };
    const api = createApi(
      refusing(subjects.apiCancel),
      {} as never,
      {} as never,
      pm as never,
      pino({ level: 'silent' }),
      {} as never,
      { secure: false } as never,
    );
    api.start();
    await assert.rejects(api.failed, (err: Error) => {
      assert.match(
        err.message,
        new RegExp(`^${subjects.apiCancel.replaceAll('.', '\\.')}: Permissions Violation`),
      );
      return true;
    });
    api.stop();
  });
});

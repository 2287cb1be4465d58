import type { NatsConnection } from '@nats-io/transport-node';
import { nanos } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { StepCommand, Validators, ValidationError } from '@haul/schemas';
import { limits, streams, subjects, type Executor } from './conventions.ts';
import { retryTransient } from './retry.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Send a step command to its node's executor. Deduplicated by command id within the duplicate window. */
export async function sendCommand(
  nc: NatsConnection,
  validators: Validators,
  cmd: StepCommand,
): Promise<void> {
  const v = validators.validate<StepCommand>('command', cmd);
  if (!v.ok) throw new Error(v.error.message);
  const js = jetstream(nc);
  await retryTransient(() =>
    js.publish(subjects.commands(cmd.node, cmd.executor), enc.encode(JSON.stringify(cmd)), {
      msgID: cmd.commandId,
    }),
  );
}

export type ReceivedCommand =
  | { ok: true; command: StepCommand; msg: JsMsg }
  | { ok: false; error: ValidationError; raw: unknown; msg: JsMsg };

/**
 * A durable consumer of the commands addressed to one node's executor: commands sent while the service is down
 * wait in the stream. Commands are handed over one at a time, in order; the handler acks when the outcome is in
 * the log, so a crash mid-step redelivers the command to the restarted service (which then reconciles).
 */
export async function consumeCommands(
  nc: NatsConnection,
  validators: Validators,
  node: string,
  executor: Executor,
  handle: (c: ReceivedCommand) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const jsm = await retryTransient(() => jetstreamManager(nc));
  const durable = `${executor}-${node}`;
  await retryTransient(() =>
    jsm.consumers.add(streams.commands, {
      durable_name: durable,
      filter_subject: subjects.commands(node, executor),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(limits.commandAckWaitMs),
      max_deliver: -1,
    }),
  );
  const js = jetstream(nc);
  const consumer = await js.consumers.get(streams.commands, durable);
  const iter = await consumer.consume({ max_messages: 1 });
  signal.addEventListener('abort', () => void iter.close(), { once: true });
  for await (const msg of iter) {
    let raw: unknown;
    try {
      raw = JSON.parse(dec.decode(msg.data));
    } catch {
      raw = undefined;
    }
    const v = validators.validate<StepCommand>('command', raw);
    await handle(v.ok ? { ok: true, command: v.value, msg } : { ok: false, error: v.error, raw, msg });
    if (signal.aborted) break;
  }
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus, createEventLog, createLogger, ensureTopology, type EventLog } from '@haul/bus';
import { createValidators, type MigrationEvent } from '@haul/schemas';
import { startNatsServer, stepIntended, tempIdentities, type NatsServer } from '@haul/test';
import { createGiveUpWatch, TransferGivenUp } from '../src/given-up.ts';

const validators = createValidators();
const ids = tempIdentities();
const log = createLogger('given-up-test', undefined, { HAUL_LOG_LEVEL: 'silent' });

const command = (migrationId: string, n: number) => ({
  commandId: `${migrationId}:streamImages:ct:${n}`,
  migrationId,
  node: 'node-a',
  executor: 'streamer' as const,
  attempt: n,
  step: 'streamImages' as const,
  timeoutMs: 60_000,
  args: {
    toNode: 'node-b',
    sourceDir: '/vz/dump/a',
    targetDir: '/vz/dump/b',
    priority: 'iteration' as const,
  },
});

/** The coordinator's StepFailed for a transfer it stopped waiting for. */
const givenUp = (cmd: ReturnType<typeof command>): MigrationEvent => ({
  ...stepIntended(cmd),
  eventId: `${cmd.commandId}:timeout`,
  type: 'StepFailed',
  data: {
    commandId: cmd.commandId,
    step: cmd.step,
    node: cmd.node,
    attempt: cmd.attempt,
    error: { code: 'HAUL_STEP_TIMEOUT', message: 'timed out', retryable: true },
  },
});

/** Resolves with the signal's reason once it aborts. */
const aborted = (signal: AbortSignal) =>
  new Promise<unknown>((resolve) => signal.addEventListener('abort', () => resolve(signal.reason)));

describe(
  'a transfer watched for a give-up (a subscription on its migration, reads of its log)',
  { timeout: 60_000 },
  () => {
    let server: NatsServer;
    let nc: NatsConnection;
    let coordinator: EventLog;
    let streamerLog: EventLog;

    before(async () => {
      server = await startNatsServer();
      nc = await connectBus({ servers: server.url, name: 'given-up-test' });
      await ensureTopology(nc);
      coordinator = createEventLog(nc, validators, ids.trust('coordinator'));
      streamerLog = createEventLog(nc, validators, ids.trust('streamer@node-a'));
    });
    after(async () => {
      await nc?.close();
      await server?.stop();
    });

    it('given the give-up appended after the watch began, then the transfer is stopped with its code', async () => {
      const cmd = command('m-given-up-later', 1);
      const { seq } = await coordinator.append(stepIntended(cmd));
      const watch = createGiveUpWatch(nc, streamerLog).watch(cmd.migrationId, cmd.commandId, seq, log);
      const reason = aborted(watch.signal);
      // Another transfer's outcome is not this one's: its watch goes on.
      const other = command(cmd.migrationId, 2);
      await coordinator.append(stepIntended(other));
      await coordinator.append(givenUp(other));
      await coordinator.append(givenUp(cmd));
      const r = await reason;
      assert.ok(r instanceof TransferGivenUp, String(r));
      assert.equal(r.code, 'HAUL_STEP_TIMEOUT');
      watch.stop();
    });

    it('given the give-up appended between the read before the transfer and the watch, then it is found', async () => {
      const cmd = command('m-given-up-before', 1);
      const { seq } = await coordinator.append(stepIntended(cmd));
      // Appended before the subscription exists: no message is heard for it, the first read finds it.
      await coordinator.append(givenUp(cmd));
      const watch = createGiveUpWatch(nc, streamerLog).watch(cmd.migrationId, cmd.commandId, seq, log);
      const r = await aborted(watch.signal);
      assert.ok(r instanceof TransferGivenUp, String(r));
      watch.stop();
    });

    it('given a forged give-up (signed by no coordinator), then the transfer is not stopped by it', async () => {
      const cmd = command('m-given-up-forged', 1);
      const { seq } = await coordinator.append(stepIntended(cmd));
      const watch = createGiveUpWatch(nc, streamerLog).watch(cmd.migrationId, cmd.commandId, seq, log);
      const reason = aborted(watch.signal);
      // node-b's agent may append events, but a StepFailed of a transfer on node-a is not its to write.
      await createEventLog(nc, validators, ids.trust('agent@node-b')).append(givenUp(cmd));
      // The real one after it: the watch stops at this one, read after the forgery was judged and dropped.
      const real = { ...givenUp(cmd), eventId: `${cmd.commandId}:stalled` };
      if (real.type === 'StepFailed') real.data.error.code = 'HAUL_STREAM_STALLED';
      await coordinator.append(real);
      const r = await reason;
      assert.ok(r instanceof TransferGivenUp, String(r));
      assert.equal(r.code, 'HAUL_STREAM_STALLED');
      watch.stop();
    });
  },
);

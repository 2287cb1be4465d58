import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { connectBus, createEventLog, createLogger, ensureTopology, subjects, type EventLog } from '@haul/bus';
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

/**
 * A TCP relay to the server that the test can cut: `cut()` closes every connection through it and refuses new ones
 * (a client behind it is disconnected and cannot reconnect) until `open()`.
 */
async function startRelay(
  port: number,
): Promise<{ url: string; cut(): void; open(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let isOpen = true;
  const relay: Server = createServer((client) => {
    if (!isOpen) return void client.destroy();
    const upstream = tcpConnect(port, '127.0.0.1');
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const { port: relayPort } = relay.address() as { port: number };
  return {
    url: `127.0.0.1:${relayPort}`,
    cut() {
      isOpen = false;
      for (const s of sockets) s.destroy();
    },
    open() {
      isOpen = true;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => relay.close(() => resolve()));
    },
  };
}

/**
 * Resolves at the connection's next status report of this type; rejects if the connection closes first (handled
 * here too: a test that fails before awaiting it leaves no unhandled rejection behind).
 */
function nextStatus(nc: NatsConnection, type: 'disconnect' | 'reconnect'): Promise<void> {
  const status = (async () => {
    for await (const s of nc.status()) if (s.type === type) return;
    throw new Error(`the connection closed before its next ${type}`);
  })();
  status.catch(() => {});
  return status;
}

/** An event log whose reads are counted: `settled(n)` resolves once n reads have returned. */
function countingReads(inner: EventLog): EventLog & { settled(n: number): Promise<void> } {
  let done = 0;
  const waiting: { n: number; resolve: () => void }[] = [];
  return {
    ...inner,
    read: async (migrationId, opts) => {
      try {
        return await inner.read(migrationId, opts);
      } finally {
        done++;
        for (const w of waiting.filter((x) => x.n <= done)) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve();
        }
      }
    },
    settled: (n) =>
      new Promise<void>((resolve) => {
        if (done >= n) resolve();
        else waiting.push({ n, resolve });
      }),
  };
}

type GiveUpWatched = ReturnType<ReturnType<typeof createGiveUpWatch>['watch']>;

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

    it('given the give-up appended while the streamer was disconnected, then the read at its reconnection finds it', async () => {
      // The streamer's connection goes through a relay the test cuts; the coordinator's does not.
      const relay = await startRelay(server.port);
      const snc = await connectBus({ servers: relay.url, name: 'given-up-disconnected' });
      let watch: GiveUpWatched | undefined;
      try {
        const reads = countingReads(createEventLog(snc, validators, ids.trust('streamer@node-a')));
        const cmd = command('m-given-up-disconnected', 1);
        const { seq } = await coordinator.append(stepIntended(cmd));
        watch = createGiveUpWatch(snc, reads).watch(cmd.migrationId, cmd.commandId, seq, log);
        const reason = aborted(watch.signal);
        // The first read (after the subscription was registered) is done: nothing is in flight at the cut.
        await reads.settled(1);
        const disconnected = nextStatus(snc, 'disconnect');
        relay.cut();
        await disconnected;
        // Appended while the streamer hears nothing: no message will ever reach its subscription for it.
        await coordinator.append(givenUp(cmd));
        const reconnected = nextStatus(snc, 'reconnect');
        relay.open();
        await reconnected;
        const r = await reason;
        assert.ok(r instanceof TransferGivenUp, String(r));
        assert.equal(r.code, 'HAUL_STEP_TIMEOUT');
      } finally {
        // Stopped even when the test failed: a watch left on a closed connection would read again every second.
        watch?.stop();
        await snc.close();
        await relay.close();
      }
    });
  },
);

describe(
  'a transfer watched for a give-up on a server that refuses the subscription',
  { timeout: 60_000 },
  () => {
    let server: NatsServer;
    let secrets: string;
    before(async () => {
      // A server whose streamer may read the log but not subscribe to the migrations' subjects (a grant it predates).
      secrets = await mkdtemp(join(tmpdir(), 'haul-given-up-perms-'));
      await writeFile(
        join(secrets, 'nats-server.conf'),
        [
          'authorization {',
          '  users = [',
          '    { user: coordinator, password: coordinator }',
          `    { user: streamer, password: streamer, permissions: { subscribe: { deny: ["${subjects.eventsAll}"] } } }`,
          '  ]',
          '}',
          '',
        ].join('\n'),
      );
      server = await startNatsServer({ secrets });
    });
    after(async () => {
      await server?.stop();
      await rm(secrets, { recursive: true, force: true });
    });

    it('given the refusal, then the streamer warns naming the subject and the grant, and a give-up is still read at a reconnection', async () => {
      const cnc = await connectBus({
        servers: server.url,
        name: 'coordinator',
        user: 'coordinator',
        pass: 'coordinator',
      });
      const snc = await connectBus({
        servers: server.url,
        name: 'streamer',
        user: 'streamer',
        pass: 'streamer',
      });
      let watch: GiveUpWatched | undefined;
      try {
        await ensureTopology(cnc);
        const warned: { subject?: string; msg: string }[] = [];
        const captured = pino(
          { level: 'warn' },
          {
            write: (line: string) => void warned.push(JSON.parse(line) as { subject?: string; msg: string }),
          },
        );
        const coordinatorLog = createEventLog(cnc, validators, ids.trust('coordinator'));
        const cmd = command('m-given-up-refused', 1);
        const { seq } = await coordinatorLog.append(stepIntended(cmd));
        const reads = countingReads(createEventLog(snc, validators, ids.trust('streamer@node-a')));
        watch = createGiveUpWatch(snc, reads).watch(cmd.migrationId, cmd.commandId, seq, captured);
        const reason = aborted(watch.signal);
        // Two reads: one at the refusal, one once the subscription's flush returned (whichever comes first).
        await reads.settled(2);
        const refusal = warned.find((w) => w.subject === subjects.events(cmd.migrationId));
        assert.ok(refusal, JSON.stringify(warned));
        assert.ok(refusal.msg.includes(`subscribe ${subjects.eventsAll}`), refusal.msg);
        // Heard by no subscription: found by the read after the next reconnection, not by either read before it.
        await coordinatorLog.append(givenUp(cmd));
        assert.equal(watch.signal.aborted, false);
        const reconnected = nextStatus(snc, 'reconnect');
        await server.kill('SIGKILL');
        await server.restart();
        await reconnected;
        const r = await reason;
        assert.ok(r instanceof TransferGivenUp, String(r));
      } finally {
        watch?.stop();
        await snc.close();
        await cnc.close();
      }
    });
  },
);

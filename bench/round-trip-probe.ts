/** How long a message takes to reach its consumer: a command to an agent's queue, an event to the coordinator. */
async function deliveries(
  nc: NatsConnection,
  validators: Validators,
  log: EventLog,
  parts: Record<string, number[]>,
): Promise<void> {
  const ac = new AbortController();
  let received: (() => void) | undefined;
  const queue = createCommandQueue({
    nc,
    validators,
    eventLog: log,
    log: createLogger('probe', 'probe', { HAUL_LOG_LEVEL: 'silent' }),
    actor: { service: 'node-agent', node: 'probe' },
    executor: 'agent',
    trust: insecureTrust(),
  });
  await queue.consume(({ msg }) => {
    msg.ack();
    received?.();
    return Promise.resolve();
  }, ac.signal);
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(streams.events, {
    durable_name: 'probe',
    filter_subject: subjects.eventsAll,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.New,
  });
  const events = await (
    await jetstream(nc).consumers.get(streams.events, 'probe')
  ).consume({ max_messages: 64 });
  void (async () => {
    for await (const m of events) {
      m.ack();
      received?.();
    }
  })();
  const timed = async (part: string, send: () => Promise<unknown>) => {
    const got = new Promise<void>((r) => (received = r));
    const t0 = performance.now();
    await send();
    await got;
    (parts[part] ??= []).push(performance.now() - t0);
  };
  for (let i = 0; i < 40; i++) {
    const mid = `m-delivery${String(i).padStart(14, '0')}`;
    const cmd: StepCommand = {
      commandId: `${mid}:umountSource:-:1`,
      migrationId: mid,
      node: 'probe',
      executor: 'agent',
      attempt: 1,
      step: 'umountSource',
      args: { ctid: '101' },
      timeoutMs: 30_000,
    };
    await timed('command: send → agent queue hands it over', () =>
      sendCommand(nc, validators, insecureTrust(), cmd),
    );
    const e = {
      eventId: `${mid}:probe`,
      migrationId: mid,
      type: 'CancelRequested',
      actor: { service: 'coordinator', node: 'probe' },
      time: new Date().toISOString(),
      schemaVersion: 1,
      data: { reason: 'probe' },
    } as MigrationEvent;
    await timed('event: append → coordinator consumer', () => log.append(e));
  }
  ac.abort();
  await events.close();
}

/**
 * `node --import tsx bench/round-trip-probe.ts`: what one control round trip of the frozen window costs on this
 * machine, part by part, against a real nats-server. It replays a golden migration log and, at every event, does
 * what the services do around one step: the coordinator reads the log, decides, appends its intent with
 * compare-and-set, sends the command and writes the status; the agent reads the log (its duplicate check) and appends
 * the outcome. Prints the median and p90 of each part in ms.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  buckets,
  connectBus,
  createCommandQueue,
  createLogger,
  streams,
  subjects,
  type EventLog,
  createEventLog,
  insecureTrust,
  encodeJson,
  limits,
  ensureTopology,
  openBucket,
  sendCommand,
  stepTimeoutsMs,
  streamStallMs,
} from '@haul/bus';
import { decideUntilStable, fold, initialState, projectStatus, type DecideMeta } from '@haul/domain';
import { createValidators, type MigrationEvent, type StepCommand, type Validators } from '@haul/schemas';
import { startNatsServer } from '@haul/test';

const golden = join(import.meta.dirname, '..', 'test', 'fixtures', 'logs', 'live-shared-and-local.jsonl');
const rounds = Number(process.argv[2] ?? '5');

const server = await startNatsServer();
const nc = await connectBus({ servers: server.url, name: 'round-trip-probe' });
try {
  await ensureTopology(nc);
  const validators = createValidators();
  // The probe replays a golden log as one writer (coordinator and agent alike), so it does not sign; the control
  // bench (bench:control) measures haul with signing on.
  const trust = insecureTrust();
  const log = createEventLog(nc, validators, trust);
  const kv = await openBucket(nc, buckets.status);
  const parts: Record<string, number[]> = {};
  const time = async <T>(part: string, fn: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now();
    const v = await fn();
    (parts[part] ??= []).push(performance.now() - t0);
    return v;
  };
  const meta = (): DecideMeta => ({
    now: new Date().toISOString(),
    actor: { service: 'coordinator', node: 'probe' },
    timeoutsMs: { ...stepTimeoutsMs },
    frozenLeaseMs: 60_000,
    maxAttempts: 5,
    stallMs: streamStallMs,
    commandFreshMs: limits.commandFreshMs,
  });
  const source = readFileSync(golden, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MigrationEvent);
  for (let r = 0; r < rounds; r++) {
    const mid = `m-probe${String(r).padStart(17, '0')}`;
    let seq = 0;
    for (const original of source) {
      const e = JSON.parse(JSON.stringify(original).replaceAll(original.migrationId, mid)) as MigrationEvent;
      // The coordinator's side of one round trip, as the process manager does it today.
      const { events, lastSeq } = await time('coordinator: read log', () => log.read(mid));
      const state = await time('coordinator: fold', () =>
        fold(
          events.map((s) => s.event),
          initialState(),
        ),
      );
      await time('coordinator: decide', () => decideUntilStable({ kind: 'Advance', meta: meta() }, state));
      const status = projectStatus(state, lastSeq);
      if (status) await time('coordinator: status put', () => kv.put(mid, encodeJson(status)));
      if (e.type === 'StepIntended') {
        seq = (
          await time('coordinator: append (CAS)', () =>
            log.append(e, { expectedLastSeq: seq, msgId: e.eventId }),
          )
        ).seq;
        await time('coordinator: send command', () => sendCommand(nc, validators, trust, e.data));
        continue;
      }
      if (e.type === 'StepSucceeded' || e.type === 'StepFailed') {
        await time('agent: read log (duplicate check)', () => log.read(mid));
        seq = (await time('agent: append outcome', () => log.append(e))).seq;
        continue;
      }
      seq = (await log.append(e, { expectedLastSeq: seq, msgId: e.eventId })).seq;
    }
  }
  await deliveries(nc, validators, log, parts);
  const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!;
  for (const [part, xs] of Object.entries(parts))
    console.log(
      `${part.padEnd(36)} median ${q(xs, 0.5).toFixed(2).padStart(6)} ms  p90 ${q(xs, 0.9).toFixed(2).padStart(6)} ms  (n=${xs.length})`,
    );
} finally {
  await nc.drain();
  await server.stop();
}

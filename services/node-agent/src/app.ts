import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ackSubjectOf,
  BusError,
  commandFate,
  commandRefusals,
  ConcurrencyConflictError,
  isTransient,
  Registry,
  agentMetrics,
  buckets,
  commandConsumerName,
  createCommandQueue,
  createSerialByKey,
  eventFactory,
  exitWhenLoopEnds,
  exposeMetrics,
  hasOutcome,
  createEventLog,
  withReadCache,
  encodeJson,
  migrationLogger,
  openBucket,
  serveDiscovery,
  streams,
  type CommandDelivery,
  type Logger,
  type MetricsConfig,
  type Trust,
} from '@haul/bus';
import {
  executorServices,
  type ErrorInfo,
  type MigrationEvent,
  type StepCommand,
  type StepName,
  type Validators,
} from '@haul/schemas';
import {
  errorCodes,
  fold,
  initialState,
  judgedAgain,
  mayRunBefore,
  misaddressed,
  neverRanHere,
  runsBefore,
  runsInOrder,
} from '@haul/domain';
import { withBinaryMemo } from './adapters/binary-memo.ts';
import { warmDescriptorParser } from './adapters/descriptor.ts';
import { CommandFailedError, createRunner } from './adapters/exec.ts';
import { createToolRecords, endOrphanedTools } from './adapters/orphaned-tools.ts';
import { createTools, criuFactCalls } from './adapters/tools.ts';
import { heartbeat as heartbeatOf, type HostFacts } from './capabilities.ts';
import { readCtDisks } from './adapters/vz-config.ts';
import { confineCommand } from './confinement.ts';
import { etcVz, StepError, type AgentConfig, type Handler, type HandlerContext } from './context.ts';
import { resumeOnSource } from './handlers/dumps.ts';
import { createHeldDumps } from './held-dumps.ts';
import { toolHost, type AgentHost } from './host.ts';
import { createLeases } from './leases.ts';
import { serveInspections } from './inspections.ts';
import { createCommandMarkers, createInHand, handBackInDoubt } from './markers.ts';
import { tooEarlyDelayMs } from './too-early.ts';

export type NodeAgentDeps = {
  nc: NatsConnection;
  validators: Validators;
  cfg: AgentConfig;
  log: Logger;
  /** Signs this agent's events; only commands signed by a coordinator run, only believed events are read. */
  trust: Trust;
  env?: NodeJS.ProcessEnv;
  /** How the process ends when its command consumer dies (default process.exit; tests pass their own). */
  exit?: (code: number) => void;
  /** The host's step handlers and facts (default: the real tools; the control bench passes a null host). */
  host?: AgentHost;
  /** Called as each command is taken off the queue (the control bench times dispatch with it). */
  onCommand?: (delivery: CommandDelivery) => void;
  /** Where to serve Prometheus metrics (HAUL_METRICS_PORT); absent: not served. */
  metrics?: MetricsConfig | undefined;
};

type StepOutcome = Extract<MigrationEvent, { type: 'StepSucceeded' | 'StepFailed' }>;

/** An agent's first command of a migration, as its target or its source (either mode): from it on, the log is followed. */
const followedFrom: ReadonlySet<StepName> = new Set<StepName>(['preflightTarget', 'preflightSource']);

/**
 * The node agent: consumes the commands addressed to its node (a durable JetStream consumer), runs each step's
 * handler through the host tools, and appends the outcome to the migration's log. A command is acked only once its
 * outcome is in the log; a command marker on disk tells a redelivery after a crash (in doubt: reconcile by
 * inspection) from a first delivery. A migration has one host action at a time: a command's step, or its frozen
 * lease's resume; different migrations' (different CTs') run side by side, so a CT frozen in its window never waits
 * for another migration's long step (a pre-dump, a merge).
 */
export function createNodeAgent(deps: NodeAgentDeps) {
  const { nc, validators, cfg, log, trust } = deps;
  const env = deps.env ?? process.env;
  const ac = new AbortController();
  // Reads before each command fetch only the events this agent has not read yet.
  const eventLog = withReadCache(
    createEventLog(nc, validators, trust, (seq, m) =>
      log.warn({ seq, err: m }, 'invalid event in the log skipped'),
    ),
    {
      signal: ac.signal,
      onFollowError: (migrationId, err) =>
        log.warn({ migrationId, err }, 'stopped keeping the log current; reads fetch what it missed'),
    },
  );
  const registry = new Registry();
  const metrics = agentMetrics(registry);
  let metricsServer: { close(): void } | undefined;
  const toolRecords = createToolRecords(join(cfg.stateDir, 'tools'));
  const run = withBinaryMemo(createRunner(log, env, metrics, toolRecords), env, Object.values(criuFactCalls));
  const host = deps.host ?? toolHost(run, ac.signal);
  const held = createHeldDumps(cfg.stateDir, log, env);
  const markers = createCommandMarkers(join(cfg.stateDir, 'commands'));
  const inHand = createInHand(join(cfg.stateDir, 'in-hand'));
  const inHandRecord = (f: () => void): void => {
    try {
      f();
    } catch (err) {
      log.warn(
        { err },
        'a record of the commands in hand failed: a restart hands them back after their ack wait',
      );
    }
  };
  /**
   * End the marker of a command refused for good. One that cannot be removed stays: a restart then finds the command
   * in doubt, hands its delivery back (the server ignores it, the command was termed) and keeps it. Not a failure.
   */
  const endRefused = (commandId: string): void => {
    try {
      markers.end(commandId);
    } catch (err) {
      log.warn({ err, commandId }, 'the marker of a refused command could not be removed');
    }
  };
  const actor = { service: executorServices.agent, node: cfg.node } as const;
  const queue = createCommandQueue({
    nc,
    validators,
    eventLog,
    log,
    actor,
    executor: 'agent',
    trust,
    inOrder: runsInOrder.agent,
    refused: (c) => endRefused(c.commandId),
    // A record that cannot be written or removed costs a restart its quick hand-back, nothing else: not a failure.
    hands: {
      took: (d) => {
        const reply = ackSubjectOf(d.msg);
        if (reply) inHandRecord(() => inHand.take(d.command.commandId, reply));
      },
      letGo: (d) => {
        const reply = ackSubjectOf(d.msg);
        if (reply) inHandRecord(() => inHand.drop(reply));
      },
    },
  });
  const event = eventFactory(actor);
  /** Each migration's host actions, one at a time (its commands, its lease's resume); migrations side by side. */
  const hostActions = createSerialByKey();
  /**
   * And each CT's: a step of an earlier migration of the same CT may still run (a hung tool whose step the coordinator
   * gave up, the migration ended since by an operator's resolve and the CT admitted again); the next one waits for it.
   */
  const ctActions = createSerialByKey();
  /** A CT's VE_PRIVATE on this host, from its config (the host's own answer when it has one). */
  const privateArea = (ctid: string): string | undefined =>
    host.privateArea ? host.privateArea(ctid) : readCtDisks(etcVz(cfg), ctid)?.vePrivate || undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let loop: Promise<void> | undefined;

  const leases = createLeases({
    held,
    log,
    exclusive: (meta, fn) => hostActions.run(meta.migrationId, () => ctActions.run(meta.ctid, fn)),
    resume: (meta, mlog) =>
      resumeOnSource(contextFor(meta.migrationId, mlog, false), meta.migrationId, meta.ctid, 'lease-expired'),
    stopSource: async (meta) => {
      await createTools(run, ac.signal).vzctlStopFast(meta.ctid);
    },
  });

  const contextFor = (migrationId: string, mlog: Logger, reconciled: boolean): HandlerContext => ({
    cfg,
    tools: createTools(run, ac.signal),
    run,
    held,
    log: mlog,
    reconciled,
    readLog: async () => {
      const r = await eventLog.read(migrationId);
      return { events: r.events.map((e) => e.event), lastSeq: r.lastSeq };
    },
    async fencedAppend(ev, rule) {
      for (let attempt = 0; attempt < 50; attempt++) {
        // First on the log this agent keeps current, if it does, without a read. It may be behind the stream: then
        // the compare-and-set fails and the next try reads. A refusal is believed only from a read, as a later event
        // can lift a fence (a stopTarget after RestoreStarted lets the source resume).
        const kept = attempt === 0 ? eventLog.held(migrationId) : undefined;
        const { events, lastSeq } = kept
          ? { events: kept.events.map((e) => e.event), lastSeq: kept.lastSeq }
          : await this.readLog();
        // Already in the log (the step runs again): judged on the log before it, which no later event changes.
        const { inLog, verdict: v } = judgedAgain(events, ev.eventId, rule);
        if (inLog) return v;
        if (!v.ok && kept) continue;
        if (!v.ok) return v;
        try {
          await eventLog.append(ev, { expectedLastSeq: lastSeq, msgId: ev.eventId });
          return { ok: true };
        } catch (err) {
          if (!(err instanceof ConcurrencyConflictError)) throw err;
        }
      }
      throw new BusError(errorCodes.fenceContended, 'could not win or lose the fence in 50 tries', true);
    },
    event: (type, data, id) => event(migrationId, type, data as never, id),
  });

  /**
   * One command off the queue. A misaddressed one is refused; the others run as this node's next host action,
   * the delivery kept alive meanwhile. A failure to read or write the log throws: the queue redelivers the command
   * when the bus was unreachable, and parks it otherwise.
   */
  async function handle(delivery: CommandDelivery): Promise<void> {
    deps.onCommand?.(delivery);
    const { command: cmd, msg } = delivery;
    const handler = host.handlers[cmd.step];
    const wrong = misaddressed(cmd, { node: cfg.node, executor: 'agent' }, handler !== undefined);
    if (wrong || !handler) {
      await queue.refuse(msg, wrong!, cmd); // misaddressed refuses a step without a handler
      return;
    }
    // The queue's read stands for the log only if the command did not wait for its migration's lease resume after it.
    const read = hostActions.busy(cmd.migrationId) ? undefined : delivery.log;
    const run = await hostActions.run(cmd.migrationId, () => runOnce(cmd, handler, ackSubjectOf(msg), read));
    if (run.back) return msg.nak();
    if (run.refused) {
      // A redelivery refused for good may find the marker an earlier delivery began: nothing would end it.
      if (await queue.refuse(msg, run.refused, cmd)) endRefused(cmd.commandId);
      return;
    }
    if (run.again) return msg.nak(tooEarlyDelayMs(msg.info.deliveryCount));
    if (run.after) {
      log.info(
        { migrationId: cmd.migrationId, commandId: cmd.commandId, after: run.after.commandId },
        'an earlier command of the migration has not run yet: this one goes back to the stream for a moment',
      );
      return msg.nak(tooEarlyDelayMs(msg.info.deliveryCount));
    }
    if (run.outcome) delivery.outcomeSeq = (await eventLog.append(run.outcome)).seq;
    // A run of it began here and left no end in the log: the marker stays as that record, handed back no more.
    if (run.keepMarker) markers.handedBack(cmd.commandId);
    else markers.end(cmd.commandId);
    msg.ack();
    // From its first command of a migration on, an agent keeps the log current: the reads before its commands in
    // the frozen window (the target's restore, seconds after its preflight; the source's freeze and its snapshots)
    // fetch nothing but the last sequence. The source's read before the final dump fetched and judged the whole
    // iterative phase one message at a time: 12 ms of the demo's frozen window, and 3-8 ms before each step after.
    if (followedFrom.has(cmd.step)) eventLog.keepCurrent(cmd.migrationId);
  }

  /**
   * Run the step unless its outcome is already in the log (a duplicate delivery: nothing to record), or unless the
   * command asks for a path outside this node's roots or more than its bounds: then it is refused with nothing
   * touched (not even its marker). The one choke point of path confinement, right before the handler.
   */
  async function runOnce(
    cmd: StepCommand,
    handler: Handler,
    /** The delivery's ack subject, kept in the command's marker (handBackInDoubt). */
    reply: string | undefined,
    /** The log as the queue read it to check the command is intended (a secure cluster), just before. */
    read?: readonly MigrationEvent[],
  ): Promise<RunVerdict> {
    const mlog = migrationLogger(log, cmd.migrationId, { step: cmd.step, commandId: cmd.commandId });
    const logNow = read ?? (await eventLog.read(cmd.migrationId)).events.map((e) => e.event);
    if (hasOutcome(logNow, cmd.commandId)) return skipped(cmd, logNow, mlog);
    // Handed over before an earlier command of its migration (after a restart): that one runs first.
    const after = mayRunBefore(logNow, cmd) ? runsBefore(fold(logNow, initialState()), cmd) : undefined;
    if (after) return { after };
    const confined = confineCommand(cmd, { bounds: cfg, events: logNow, privateArea });
    if (!confined.ok) return { refused: confined.error };
    const ct = ctidOf(logNow) ?? `migration ${cmd.migrationId}`;
    const waits = ctActions.busy(ct);
    if (waits) mlog.warn({ ct }, 'a step of another migration of this CT still runs here: waiting for it');
    return ctActions.run(ct, async () => {
      const stale = waits ? await afterTheWait(cmd, mlog) : undefined;
      if (stale) return stale;
      const reconciled = markers.begin(cmd.commandId, reply);
      if (reconciled) mlog.warn('in doubt after a restart: reconciling by inspecting the host');
      try {
        return { outcome: await runStep(confined.command, handler, mlog, reconciled) };
      } catch (err) {
        if (!(err instanceof CutShortByStop)) throw err;
        mlog.warn(
          'the agent stops: the step, cut short, goes back to the stream, in doubt for the next agent',
        );
        return { back: true };
      }
    });
  }

  /**
   * The checks before the wait for the CT were made on the log as it was then, and the wait may have lasted as long as
   * a hung tool of another migration: meanwhile the coordinator may have given the command up (its outcome is in the
   * log), the migration may have ended, or the agent begun to stop. Read again before touching the host. Undefined:
   * the command runs.
   */
  async function afterTheWait(cmd: StepCommand, mlog: Logger): Promise<RunVerdict | undefined> {
    if (ac.signal.aborted) return { back: true };
    const events = (await eventLog.read(cmd.migrationId)).events.map((e) => e.event);
    const fate = commandFate(events, cmd.commandId);
    if (fate === 'done') return skipped(cmd, events, mlog);
    if (fate === 'ended')
      return {
        refused: {
          code: commandRefusals.notIntended,
          message: `${cmd.migrationId} ended while ${cmd.commandId} waited for its CT`,
        },
      };
    return undefined;
  }

  /**
   * A command whose outcome is in the log already is not run: a duplicate delivery, or one the coordinator gave up
   * (its timeout) before this agent came to it. In the second case, when no run of it began on this host
   * (neverRanHere), the agent says so: the log then holds its executor's end of it, which an operator's stop of the
   * target would otherwise have to vouch for (landMayStillRun). Said with a compare-and-set on the log it was judged
   * on: a read behind the stream (a new stream leader) may lack this agent's own outcome of a run, and is not
   * believed. A command a run of which began here, with no end in the log, keeps its marker (`keepMarker`): the one
   * record that it ran here, for every later delivery of it.
   */
  async function skipped(
    cmd: StepCommand,
    read: readonly MigrationEvent[],
    mlog: Logger,
  ): Promise<RunVerdict> {
    const marked = markers.has(cmd.commandId);
    const here = { node: cfg.node, bootId: cfg.bootId, marked };
    // Most skips end here, on the log already read: a duplicate delivery (an executor's outcome is in it), or a run
    // that began here. Its marker goes once an executor's outcome ends the command (this agent's, appended before it
    // died); without one it stays.
    if (!neverRanHere(read, cmd.commandId, here)) {
      mlog.info('duplicate delivery, or given up: its outcome is already in the log, not run');
      return marked && !endedByExecutor(read, cmd.commandId) ? { keepMarker: true } : {};
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const { events, lastSeq } = await eventLog.read(cmd.migrationId);
      if (
        !neverRanHere(
          events.map((e) => e.event),
          cmd.commandId,
          here,
        )
      )
        return {};
      try {
        await eventLog.append(notRun(cmd), { expectedLastSeq: lastSeq, msgId: `${cmd.commandId}:not-run` });
        mlog.warn('given up by the coordinator before it began here: not run, and recorded so');
        return {};
      } catch (err) {
        if (!(err instanceof ConcurrencyConflictError)) throw err;
      }
    }
    // The log moved under every try (a rollback appending): the command comes back in a moment, to be said then.
    mlog.info('its not-run word lost three compare-and-sets in a row: the command comes back to say it');
    return { again: true };
  }

  /** The agent's word that `cmd` never ran on this node (neverRanHere): a StepFailed of errorCodes.notRun. */
  function notRun(cmd: StepCommand): MigrationEvent {
    const error = {
      code: errorCodes.notRun,
      message: `${cmd.commandId} never ran on ${cfg.node}: the coordinator gave it up before it began there`,
    };
    const data = { commandId: cmd.commandId, step: cmd.step, node: cfg.node, attempt: cmd.attempt, error };
    // Its own event id: one such word per command however many deliveries say it (the server's duplicate window).
    return event(cmd.migrationId, 'StepFailed', data, `${cmd.commandId}:not-run`);
  }

  /** The step's handler, its result or error as the outcome event. */
  async function runStep(
    cmd: StepCommand,
    handler: Handler,
    mlog: Logger,
    reconciled: boolean,
  ): Promise<StepOutcome> {
    const base = {
      commandId: cmd.commandId,
      step: cmd.step,
      node: cfg.node,
      attempt: cmd.attempt,
      ...(reconciled ? { reconciled: true } : {}),
    };
    const t0 = Date.now();
    try {
      const result = await handler(cmd, contextFor(cmd.migrationId, mlog, reconciled));
      mlog.info({ ms: Date.now() - t0 }, 'step succeeded');
      metrics.step(cmd.step, 'succeeded', (Date.now() - t0) / 1000, (result as { toolMs?: number }).toolMs);
      const data = { ...base, result } as Extract<StepOutcome, { type: 'StepSucceeded' }>['data'];
      return event(cmd.migrationId, 'StepSucceeded', data, `${cmd.commandId}:result`) as StepOutcome;
    } catch (err) {
      // Neither is the step's failure, and neither is recorded as one (a failure rolls the migration back): the step
      // is in doubt, as after a crash, and its marker stays. The bus failing (a read or an append of the log inside
      // the step) is thrown on: the queue runs the command again in place, reconciled (command-queue.ts
      // handleInPlace). A tool the agent's stop cancelled: the command goes back to the stream, for the next agent.
      if (isTransient(err)) throw err;
      if (ac.signal.aborted && cancelledTool(err)) throw new CutShortByStop();
      const error = errorInfo(err);
      mlog.error({ err: error, ms: Date.now() - t0 }, 'step failed');
      metrics.step(cmd.step, 'failed', (Date.now() - t0) / 1000);
      return event(
        cmd.migrationId,
        'StepFailed',
        { ...base, error },
        `${cmd.commandId}:result`,
      ) as StepOutcome;
    } finally {
      // A held final dump gets its lease, whether the step succeeded or failed after the freeze (the rollback resumes
      // the CT then, the core holding that failure in doubt; the lease does should the rollback never come).
      if (cmd.step === 'finalDump') leases.arm(held.meta(cmd.migrationId));
    }
  }

  async function beat(facts: HostFacts): Promise<void> {
    try {
      const kv = await openBucket(nc, buckets.nodes);
      const hb = heartbeatOf(cfg, facts);
      const v = validators.validate('nodeHeartbeat', hb);
      if (!v.ok) throw new Error(v.error.message);
      await kv.put(cfg.node, encodeJson(hb));
    } catch (err) {
      log.warn({ err }, 'heartbeat failed');
    }
  }

  /** Beat, then wait a period after the beat ends: a slow beat delays the next one, beats never pile up. */
  function beatForever(facts: HostFacts): void {
    heartbeat = setTimeout(() => {
      void beat(facts).then(() => {
        if (!ac.signal.aborted) beatForever(facts);
      });
    }, cfg.heartbeatMs);
  }

  /**
   * A held dump whose criu ended after the freeze while no agent watched it (this agent's predecessor died, and the
   * criu after it): its CT runs on the source again, and nothing in the log says so, so the target's restore fence
   * would let the CT start there too. Acted on as its watch would have (the lease's `ended`: the fence won and the
   * rollback follows, or the CT stopped on the source if the target restore started), in the background; the log is
   * read here, before the agent takes a command (a bus that does not answer fails the start, and the agent is
   * started again). Never acted on: a dump of a migration that is over, or whose log is no longer whole (the stream
   * dropped its oldest events), a leftover removed: the CT may have come back to this node since, and run here
   * rightly; nor one whose CT does not run here (a reboot ended it with its criu): nothing runs twice, and the
   * migration's own steps find it so.
   */
  async function actOnDumpsEndedUnwatched(): Promise<void> {
    for (const meta of held.endedUndecided()) {
      const mlog = migrationLogger(log, meta.migrationId, { ctid: meta.ctid });
      const events = (await eventLog.read(meta.migrationId)).events.map((e) => e.event);
      if (events[0]?.type !== 'MigrationRequested' || fold(events, initialState()).terminal) {
        mlog.warn(
          "a held dump's folder of a migration that is over (or whose log is gone), its criu ended undecided: removed",
        );
        held.forget(meta.migrationId);
        continue;
      }
      if (!(await createTools(run, ac.signal).vzctlStatus(meta.ctid)).running) {
        mlog.warn(
          "a held dump's criu ended undecided, and its CT does not run here: left to the migration's steps",
        );
        continue;
      }
      void leases.ended(meta);
    }
  }

  return {
    async start(): Promise<void> {
      // Before anything acts on the host: what an agent that died left running is ended first.
      await endOrphanedTools(toolRecords, log);
      await handBackInDoubt(
        nc,
        markers,
        log,
        { stream: streams.commands, durable: commandConsumerName(cfg.node, 'agent') },
        inHand,
      );
      // Every dump whose criu still runs gets its lease: held, or still under way (its command's outcome may be in
      // the log already, so no command may come to adopt it; the lease waits for its freeze).
      for (const meta of held.running()) {
        log.warn({ migrationId: meta.migrationId }, 'adopting a final dump started before the restart');
        leases.arm(meta);
      }
      await actOnDumpsEndedUnwatched();
      warmDescriptorParser(); // the first descriptor read is otherwise a frozen window's
      // criu's version and features change only when criu is upgraded (which restarts the agent): asked once.
      const facts = await host.facts();
      await beat(facts);
      beatForever(facts);
      serveDiscovery(
        nc,
        'node-agent',
        cfg.node,
        () => ({ heldDumps: held.list().length, parkedCommands: queue.parked }),
        trust,
      );
      serveInspections({ nc, validators, cfg, tools: createTools(run, ac.signal), trust, log });
      // A deaf agent must not stay up heartbeating (admission would keep sending it work): it exits instead.
      const consumer = await queue.consume(handle, ac.signal);
      loop = exitWhenLoopEnds(log, 'command consumer', consumer.ended, ac.signal, deps.exit);
      metricsServer = await exposeMetrics({
        registry,
        cfg: deps.metrics,
        log,
        nc,
        stream: streams.commands,
        consumer: commandConsumerName(cfg.node, 'agent'),
      });
      log.info({ imageRoot: cfg.imageRoot }, 'node agent started');
    },
    async stop(): Promise<void> {
      ac.abort();
      metricsServer?.close();
      clearTimeout(heartbeat);
      leases.stop();
      await loop;
    },
  };
}

/**
 * What became of a command handed to runOnce: its outcome to record; refused for good; an earlier command of its
 * migration to run first (`after`); back to the stream at once, the agent stopping (`back`); or nothing to do (a
 * duplicate).
 */
type RunVerdict = {
  outcome?: StepOutcome;
  refused?: ErrorInfo;
  after?: StepCommand;
  back?: true;
  keepMarker?: true;
  /** Not done yet: the command goes back to the stream for a moment (a word to say lost its compare-and-sets). */
  again?: true;
};

/** The CT a migration's log is about (its request), if the log has its beginning. */
function ctidOf(log: readonly MigrationEvent[]): string | undefined {
  const req = log.find((e) => e.type === 'MigrationRequested');
  return req?.type === 'MigrationRequested' ? req.data.request.ctid : undefined;
}

/** What a tool said when it failed, as a failure event carries it. */
function toolSaid(err: CommandFailedError): Pick<ErrorInfo, 'command' | 'stderrTail' | 'exitCode'> {
  return {
    command: err.command,
    stderrTail: err.stderrTail,
    ...(err.exitCode !== undefined ? { exitCode: err.exitCode } : {}),
  };
}

/** A tool cancelled (the agent stopping), thrown as it is or as the cause a handler wrapped it in. */
const cancelledTool = (err: unknown): boolean =>
  [err, err instanceof Error ? err.cause : undefined].some(
    (e) => e instanceof CommandFailedError && e.why === 'cancelled',
  );

/** A step whose tool the agent's stop cancelled: not its failure (runStep). */
class CutShortByStop extends Error {
  constructor() {
    super('cut short by the agent stopping');
    this.name = 'CutShortByStop';
  }
}

function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof CommandFailedError) return { code: err.code, message: err.message, ...toolSaid(err) };
  if (err instanceof StepError)
    return {
      code: err.code,
      message: err.message,
      ...(err.field ? { field: err.field } : {}),
      // A step that fails on a tool's failure keeps what the tool said.
      ...(err.cause instanceof CommandFailedError ? toolSaid(err.cause) : {}),
    };
  const e = err as { message?: string; command?: string[]; exitCode?: number; stderrTail?: string };
  const info: ErrorInfo = { code: errorCodes.agentError, message: e?.message ?? String(err) };
  if (Array.isArray(e?.command)) info.command = e.command;
  if (typeof e?.exitCode === 'number') info.exitCode = e.exitCode;
  if (typeof e?.stderrTail === 'string') info.stderrTail = e.stderrTail;
  return info;
}

export type NodeAgent = ReturnType<typeof createNodeAgent>;
export type { StepCommand };

/** Has an executor (not the coordinator's give-up) recorded an outcome of the command? */
function endedByExecutor(events: readonly MigrationEvent[], commandId: string): boolean {
  return events.some(
    (e) =>
      (e.type === 'StepSucceeded' || e.type === 'StepFailed') &&
      e.data.commandId === commandId &&
      e.actor.service !== 'coordinator',
  );
}

import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BusError,
  ConcurrencyConflictError,
  buckets,
  consumeCommands,
  eventFactory,
  hasOutcome,
  createEventLog,
  encodeJson,
  limits,
  migrationLogger,
  openBucket,
  serveDiscovery,
  type Logger,
  type ReceivedCommand,
} from '@haul/bus';
import type { ErrorInfo, MigrationEvent, StepCommand, Validators } from '@haul/schemas';
import { createRunner } from './adapters/exec.ts';
import { CommandFailedError } from './adapters/exec.ts';
import { createTools } from './adapters/tools.ts';
import { heartbeat as heartbeatOf, hostFacts, type HostFacts } from './capabilities.ts';
import { StepError, type AgentConfig, type HandlerContext } from './context.ts';
import { resumeOnSource } from './handlers/dumps.ts';
import { handlers } from './handlers/index.ts';
import { createHeldDumps, type HeldMeta } from './held-dumps.ts';

export type NodeAgentDeps = {
  nc: NatsConnection;
  validators: Validators;
  cfg: AgentConfig;
  log: Logger;
  env?: NodeJS.ProcessEnv;
};

/**
 * The node agent: consumes the commands addressed to its node (a durable JetStream consumer), runs each step's
 * handler through the host tools, and appends the outcome to the migration's log. A command is acked only once its
 * outcome is in the log; a command marker on disk tells a redelivery after a crash (in doubt: reconcile by
 * inspection) from a first delivery.
 */
export function createNodeAgent(deps: NodeAgentDeps) {
  const { nc, validators, cfg, log } = deps;
  const env = deps.env ?? process.env;
  const eventLog = createEventLog(nc, validators, (seq, m) =>
    log.warn({ seq, err: m }, 'invalid event in the log skipped'),
  );
  const run = createRunner(log, env);
  const held = createHeldDumps(cfg.stateDir, log, env);
  const markers = join(cfg.stateDir, 'commands');
  mkdirSync(markers, { recursive: true });
  const ac = new AbortController();
  const leases = new Map<string, NodeJS.Timeout>();
  let heartbeat: NodeJS.Timeout | undefined;
  let loop: Promise<void> | undefined;

  const event = eventFactory({ service: 'node-agent', node: cfg.node });

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
        const { events, lastSeq } = await this.readLog();
        if (events.some((e) => e.eventId === ev.eventId)) return { ok: true };
        const v = rule(events);
        if (!v.ok) return v;
        try {
          await eventLog.append(ev, { expectedLastSeq: lastSeq, msgId: ev.eventId });
          return { ok: true };
        } catch (err) {
          if (!(err instanceof ConcurrencyConflictError)) throw err;
        }
      }
      throw new BusError('HAUL_FENCE_CONTENDED', 'could not win or lose the fence in 50 tries', true);
    },
    event: (type, data, id) => event(migrationId, type, data as never, id),
  });

  const markerOf = (commandId: string) => join(markers, commandId.replace(/[^A-Za-z0-9_.-]/g, '_'));

  async function handle(rc: ReceivedCommand): Promise<void> {
    const msg = rc.msg;
    if (!rc.ok) {
      const raw = rc.raw as { migrationId?: unknown; commandId?: unknown } | undefined;
      log.error({ err: rc.error }, 'malformed command rejected');
      const mid =
        typeof raw?.migrationId === 'string' && /^[A-Za-z0-9_-]{6,64}$/.test(raw.migrationId)
          ? raw.migrationId
          : undefined;
      if (mid) {
        const data: Extract<MigrationEvent, { type: 'CommandRejected' }>['data'] = { error: { ...rc.error } };
        if (typeof raw?.commandId === 'string') data.commandId = raw.commandId;
        await eventLog
          .append(event(mid, 'CommandRejected', data, `${mid}:rejected:${msg.seq}`))
          .catch((err: unknown) => log.error({ err }, 'could not record the rejection'));
      }
      msg.term();
      return;
    }
    const cmd = rc.command;
    const mlog = migrationLogger(log, cmd.migrationId, { step: cmd.step, commandId: cmd.commandId });
    const handler = handlers[cmd.step];
    if (cmd.node !== cfg.node || cmd.executor !== 'agent' || !handler) {
      const error = {
        code: 'HAUL_WRONG_EXECUTOR',
        message: `${cmd.step} for ${cmd.node}/${cmd.executor} is not for the agent of ${cfg.node}`,
        field: cmd.node !== cfg.node ? 'node' : 'step',
      };
      await eventLog.append(
        event(
          cmd.migrationId,
          'CommandRejected',
          { commandId: cmd.commandId, error },
          `${cmd.commandId}:rejected`,
        ),
      );
      msg.term();
      return;
    }
    let logNow: MigrationEvent[];
    try {
      logNow = (await eventLog.read(cmd.migrationId)).events.map((e) => e.event);
    } catch (err) {
      mlog.error({ err }, 'cannot read the log; the command will be redelivered');
      msg.nak(1000);
      return;
    }
    if (hasOutcome(logNow, cmd.commandId)) {
      mlog.info('duplicate delivery: the outcome is already in the log');
      msg.ack();
      return;
    }
    const marker = markerOf(cmd.commandId);
    const reconciled = existsSync(marker);
    writeFileSync(marker, JSON.stringify({ commandId: cmd.commandId, at: new Date().toISOString() }));
    if (reconciled) mlog.warn('in doubt after a restart: reconciling by inspecting the host');
    const working = setInterval(() => msg.working(), Math.max(500, limits.commandAckWaitMs / 3));
    let outcome: MigrationEvent;
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
      outcome = event(
        cmd.migrationId,
        'StepSucceeded',
        { ...base, result } as Extract<MigrationEvent, { type: 'StepSucceeded' }>['data'],
        `${cmd.commandId}:result`,
      );
      mlog.info({ ms: Date.now() - t0 }, 'step succeeded');
      if (cmd.step === 'finalDump') armLease(held.meta(cmd.migrationId));
    } catch (err) {
      const error = errorInfo(err);
      mlog.error({ err: error, ms: Date.now() - t0 }, 'step failed');
      outcome = event(cmd.migrationId, 'StepFailed', { ...base, error }, `${cmd.commandId}:result`);
    } finally {
      clearInterval(working);
    }
    try {
      await eventLog.append(outcome);
    } catch (err) {
      mlog.error({ err }, 'cannot record the outcome; the command will be redelivered and reconciled');
      msg.nak(1000);
      return;
    }
    rmSync(marker, { force: true });
    msg.ack();
  }

  /** The dead-man switch of a frozen CT: without a decision within the lease, resume on the source if the fence allows. */
  function armLease(meta: HeldMeta | undefined, delayMs?: number): void {
    if (!meta) return;
    const due =
      delayMs ??
      Math.max(0, Date.parse(meta.frozenAt ?? new Date().toISOString()) + meta.leaseMs - Date.now());
    clearTimeout(leases.get(meta.migrationId));
    leases.set(
      meta.migrationId,
      setTimeout(() => void leaseExpired(meta), due),
    );
  }

  async function leaseExpired(meta: HeldMeta): Promise<void> {
    leases.delete(meta.migrationId);
    if (!held.isHeld(meta.migrationId)) return;
    const mlog = migrationLogger(log, meta.migrationId, { ctid: meta.ctid });
    try {
      const r = await resumeOnSource(
        contextFor(meta.migrationId, mlog, false),
        meta.migrationId,
        meta.ctid,
        'lease-expired',
      );
      mlog.warn({ actions: r.actions }, 'frozen lease expired without a decision: CT resumed on the source');
    } catch (err) {
      if (err instanceof StepError && err.code === 'HAUL_FENCED') {
        mlog.error(
          { reason: err.message },
          'frozen lease expired but the target restore has started: keeping the CT frozen',
        );
        armLease(meta, meta.leaseMs);
      } else {
        mlog.fatal(
          { err },
          'frozen lease expired and NATS cannot be reached: keeping the CT frozen (safety over availability)',
        );
        armLease(meta, 1000);
      }
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

  return {
    async start(): Promise<void> {
      for (const meta of held.list()) {
        log.warn({ migrationId: meta.migrationId }, 'adopting a dump held frozen before the restart');
        armLease(meta);
      }
      // criu's version and features change only when criu is upgraded (which restarts the agent): asked once.
      const facts = await hostFacts(createTools(run, ac.signal));
      await beat(facts);
      beatForever(facts);
      serveDiscovery(nc, 'node-agent', cfg.node, () => ({ heldDumps: held.list().length }));
      loop = consumeCommands(nc, validators, cfg.node, 'agent', handle, ac.signal).catch((err: unknown) => {
        if (!ac.signal.aborted) log.fatal({ err }, 'command consumer stopped');
      });
      log.info({ imageRoot: cfg.imageRoot }, 'node agent started');
    },
    async stop(): Promise<void> {
      ac.abort();
      clearTimeout(heartbeat);
      for (const t of leases.values()) clearTimeout(t);
      await loop;
    },
  };
}

function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof CommandFailedError) {
    const e: ErrorInfo = {
      code: err.code,
      message: err.message,
      command: err.command,
      stderrTail: err.stderrTail,
    };
    if (err.exitCode !== undefined) e.exitCode = err.exitCode;
    return e;
  }
  if (err instanceof StepError)
    return err.field
      ? { code: err.code, message: err.message, field: err.field }
      : { code: err.code, message: err.message };
  const e = err as { message?: string; command?: string[]; exitCode?: number; stderrTail?: string };
  const info: ErrorInfo = { code: 'HAUL_AGENT_ERROR', message: e?.message ?? String(err) };
  if (Array.isArray(e?.command)) info.command = e.command;
  if (typeof e?.exitCode === 'number') info.exitCode = e.exitCode;
  if (typeof e?.stderrTail === 'string') info.stderrTail = e.stderrTail;
  return info;
}

export type NodeAgent = ReturnType<typeof createNodeAgent>;
export type { StepCommand };

import { setTimeout as delay } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { headers, nanos } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import {
  wireError,
  isTerminalEvent,
  type Actor,
  type ErrorInfo,
  type MigrationEvent,
  type StepCommand,
  type ValidationError,
  type Validators,
} from '@haul/schemas';
import { limits, streams, subjects, type Executor } from './conventions.ts';
import { createParking } from './dead-letters.ts';
import { ensureDurable } from './durable.ts';
import { BusUnavailableError, isTransient } from './errors.ts';
import type { EventLog } from './event-log.ts';
import { commandFate, eventFactory } from './events.ts';
import type { Logger } from './logger.ts';
import { readAgainUntil, retryTransient } from './retry.ts';
import { createSerialByKey } from './serial.ts';
import type { Trust } from './trust/trust.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Send a step command to its node's executor, signed by this process (the coordinator): the signature covers the
 * subject (the node and executor) and the body (the migration and command ids). Deduplicated by command id within
 * the duplicate window.
 */
export async function sendCommand(
  nc: NatsConnection,
  validators: Validators,
  trust: Trust,
  cmd: StepCommand,
): Promise<{ duplicate: boolean; seq: number }> {
  const v = validators.validate<StepCommand>('command', cmd);
  if (!v.ok) throw new Error(v.error.message);
  const js = jetstream(nc);
  const subject = subjects.commands(cmd.node, cmd.executor);
  const body = enc.encode(JSON.stringify(cmd));
  const signature = trust.sign(subject, body);
  const h = signature ? headers() : undefined;
  for (const [k, val] of Object.entries(signature ?? {})) h?.set(k, val);
  return retryTransient(async () => {
    const ack = await js.publish(subject, body, {
      msgID: cmd.commandId,
      timeout: limits.publishTimeoutMs,
      ...(h ? { headers: h } : {}),
    });
    // As for events: a duplicate with sequence 0 (clustered 2.9) is not stored yet.
    if (ack.duplicate && ack.seq === 0)
      throw new BusUnavailableError(`${subject}: ${cmd.commandId} is not stored yet`);
    // A duplicate: the stream held it already (another coordinator, or an earlier send, stored it first), at `seq`.
    return { duplicate: ack.duplicate, seq: ack.seq };
  });
}

/**
 * When the command stream stored the message at `seq` (what a duplicate send's answer names), in ms since the epoch;
 * undefined when it is no longer there (a work queue: its executor took it and ended it).
 */
export async function commandStoredAt(nc: NatsConnection, seq: number): Promise<number | undefined> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const m = await retryTransient(() => jsm.streams.getMessage(streams.commands, { seq }));
  return m?.time.getTime();
}

/** A command as handed to its executor: valid against its schema. */
export type CommandDelivery = {
  command: StepCommand;
  msg: JsMsg;
  /** The migration's authentic log as read to check the command's intent (none when signatures are off). */
  log?: readonly MigrationEvent[];
  /** The stream sequence that read ended at (with `log`). */
  logSeq?: number;
  /**
   * Where the handler appended the command's outcome, when it did: an in-order executor's next command of the
   * migration is checked against it (laneEnds).
   */
  outcomeSeq?: number;
};

/**
 * The subject a delivery's acks go to (`$JS.ACK.<stream>.<consumer>.…`): what another process may ack it on, such as
 * the agent after this one handing back a command this one died running. nats.js has it as the message's reply
 * without declaring it on JsMsg; undefined if that changes.
 */
export function ackSubjectOf(msg: JsMsg): string | undefined {
  const reply = (msg as unknown as { reply?: unknown }).reply;
  return typeof reply === 'string' && ackSubjectInfo(reply) ? reply : undefined;
}

/**
 * What an ack subject names: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<delivery seq>.<time>.<pending>`,
 * or with a domain and an account hash after `ACK` and a token at the end (nats-server 2.10 may send either form).
 */
export function ackSubjectInfo(
  subject: string,
): { stream: string; consumer: string; streamSeq: number; deliverySeq: number } | undefined {
  const t = subject.split('.');
  const at = t.length === 9 ? 2 : t.length >= 11 ? 4 : -1;
  if (at < 0 || t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  const [stream, consumer, , sseq, dseq] = t.slice(at, at + 5);
  const streamSeq = Number(sseq);
  const deliverySeq = Number(dseq);
  if (!stream || !consumer || !Number.isSafeInteger(streamSeq) || !Number.isSafeInteger(deliverySeq))
    return undefined;
  return { stream, consumer, streamSeq, deliverySeq };
}

/** Codes of the commands the queue refuses itself (executors have their own, e.g. HAUL_WRONG_EXECUTOR). */
export const commandRefusals = {
  /** Not JSON, or not a valid command: `field` and `rule` say which part breaks the schema. */
  invalid: 'HAUL_INVALID_MESSAGE' satisfies ValidationError['code'],
  /** Handling it threw (a fault outside any step): parked, never run again. */
  unhandled: 'HAUL_COMMAND_UNHANDLED',
  /** Not signed by a coordinator: parked and counted, and no event is written for it (docs/security.md). */
  unauthenticated: 'HAUL_COMMAND_UNAUTHENTICATED',
  /** Signed, but its migration's log holds no such live intent (a replay, or a command of a finished migration). */
  notIntended: 'HAUL_COMMAND_NOT_INTENDED',
} as const;

/**
 * Whether a command's check may take the first read of its log as it comes: it is its first delivery, and its check
 * runs within limits.commandFreshMs of its storage and within half its own timeout. The coordinator gives a command up
 * no sooner than its timeout after its storage (domain deadlines.ts, from the stream's time as this is), and its
 * migration cannot end before the command has an outcome: so a fresh command's outcome or end can be in no log yet,
 * and a read behind lacks nothing that decides. Any other command may have been given up and its migration ended in
 * the meantime. The rule assumes the executor's clock is within the smaller of the two bounds of the servers' clocks
 * (seconds, where NTP runs).
 */
export function checkedOnFirstRead(c: {
  redelivered: boolean;
  /** When the command stream stored it (the delivery's timestamp), ms since the epoch. */
  storedMs: number;
  nowMs: number;
  timeoutMs: number;
}): boolean {
  return !c.redelivered && c.nowMs - c.storedMs < Math.min(limits.commandFreshMs, c.timeoutMs / 2);
}

/** The durable consumer of one node's executor (haul.cmd.<node>.<executor>). */
export const commandConsumerName = (node: string, executor: Executor): string => `${executor}-${node}`;

/** How long a command whose handling failed on the bus waits before it is delivered again. */
const busRetryMs = 1000;
/** The longest wait between the tries of an in-order executor's command that fails on the bus. */
const maxHoldMs = 10_000;
/** How long a consumer loop that ended waits for its last answers to reach the server (a flush's round trip). */
const answersFlushMs = 2000;

/**
 * A call on a delivery (ack, nak, working): a client may throw once the connection is closing (the consumer loop ends
 * then), which is not a failure here. The nats.js pinned now does not throw, and a closed connection drops the call:
 * whether it reached the server is told by `nc.isClosed()` (inLane), not by this.
 */
const tell = (f: () => void): void => {
  try {
    f();
  } catch {
    // closing
  }
};

/** An error as a rejection records it: its texts bounded, whatever the message they came from held. */
const clipped = (e: ErrorInfo): ErrorInfo => ({
  ...e,
  message: e.message.slice(0, 2000),
  ...(e.field !== undefined ? { field: e.field.slice(0, 200) } : {}),
});

export type CommandQueueDeps = {
  nc: NatsConnection;
  validators: Validators;
  eventLog: EventLog;
  log: Logger;
  /** Who consumes: the actor of its CommandRejected events, and its dead letters' haul.dead.<service>.<node>. */
  actor: Actor;
  executor: Executor;
  /** Verifies that each command is signed by a coordinator; refusals are counted in it. */
  trust: Trust;
  /**
   * The executor runs each migration's commands one at a time in the order it is handed them, and the commands of
   * different migrations side by side (a node agent; @haul/domain's runsInOrder). A command whose handling failed on
   * the bus is tried again in place, holding its migration's commands, instead of being delivered again later
   * behind the ones stored after it.
   */
  inOrder?: boolean;
  /**
   * Told as an in-order executor's delivery enters its lane and as it leaves it (handled, handed back or refused):
   * what a process that dies meanwhile held, for the next one to hand back (the node agent's in-hand records). A
   * delivery that leaves its lane after the connection closed is not let go: its answer cannot have been sent.
   */
  hands?: { took(d: CommandDelivery): void; letGo(d: CommandDelivery): void };
  /**
   * Told when a command a coordinator signed is refused for good here (parked and termed: it never runs here again)
   * after the queue handed it over or checked it against its log: its migration ended without running it, or its
   * handler failed outside the bus. The node agent ends the command's marker then, which nothing else would end.
   */
  refused?: (command: StepCommand) => void;
  /** How long a loop that ended on its own waits for the commands it runs (default limits.lostConsumerGraceMs). */
  lostConsumerGraceMs?: number;
  /** The clock a command's age is read on (checkedOnFirstRead); Date.now unless a test makes commands older. */
  now?: () => number;
};

type Decoded = { ok: true; command: StepCommand } | { ok: false; error: ErrorInfo; raw: unknown };

/**
 * The commands addressed to one node's executor, from a durable consumer: commands sent while the service is down
 * wait in the stream. Several are in hand at once: an in-order executor's run one migration's at a time, in the
 * order handed over (inLane), another executor's side by side; the handler acks once the outcome is in the log, so a
 * crash mid-step redelivers the command to the restarted service (which then reconciles). A message that
 * cannot be handled — undecodable, invalid, or one whose handler throws — is parked in HAUL_DEAD_LETTERS, recorded
 * as CommandRejected in its migration's log when it names a valid migration, and termed: it never stops the queue
 * and is never re-run forever.
 */
export function createCommandQueue(deps: CommandQueueDeps) {
  const { nc, validators, eventLog, log, actor, executor, trust, inOrder = false, hands, refused } = deps;
  const { lostConsumerGraceMs = limits.lostConsumerGraceMs, now = Date.now } = deps;
  const parking = createParking(nc, actor.service, actor.node);
  const event = eventFactory(actor);
  /** An in-order executor's commands, one migration's at a time (inLane). */
  const lanes = createSerialByKey();
  /** Another executor's deliveries being checked and handed over, side by side. */
  const besides = new Set<Promise<void>>();
  /**
   * An in-order executor's last outcome appended per migration, and when (this process's clock): the next command of
   * the migration in its lane began its turn then. The coordinator times that command from that outcome (domain
   * deadlines.ts queuePlace) and gives up no command of the migration before it unless with that outcome's own
   * command, which the log then shows before that outcome. So the next command is fresh for a while after it, however
   * long it waited behind (the shared disks' steps in the frozen window), if its read reaches that outcome.
   */
  const laneEnds = new Map<string, { seq: number; atMs: number }>();
  const laneEnded = (d: CommandDelivery): void => {
    const at = now();
    for (const [mid, e] of laneEnds) if (at - e.atMs >= limits.commandFreshMs) laneEnds.delete(mid);
    if (d.outcomeSeq !== undefined) laneEnds.set(d.command.migrationId, { seq: d.outcomeSeq, atMs: at });
  };
  /**
   * A failure of the queue's own work around a handler, running beside the consumer loop (a handler's failures are
   * handled: handlerFailed): the loop ends with it, as it would have had the loop awaited that work.
   */
  let broken: { err: unknown } | undefined;
  let endLoop = (): void => {};
  const fail = (err: unknown): void => {
    broken ??= { err };
    endLoop();
  };
  /** Tell the executor of a command refused for good; what it does then is its own and never ends the queue. */
  const told = (command: StepCommand): void => {
    try {
      refused?.(command);
    } catch (err) {
      log.warn({ err, commandId: command.commandId }, 'the executor failed on a refused command');
    }
  };

  function decode(msg: JsMsg): Decoded {
    let raw: unknown;
    try {
      raw = JSON.parse(dec.decode(msg.data));
    } catch {
      return {
        ok: false,
        error: { code: commandRefusals.invalid, message: 'the command is not JSON', field: '' },
        raw: undefined,
      };
    }
    const v = validators.validate<StepCommand>('command', raw);
    return v.ok ? { ok: true, command: v.value } : { ok: false, error: wireError(v.error), raw };
  }

  /**
   * The CommandRejected event of a refused message: with its command id when that is a valid one, and none at all
   * when the message names no valid migration (the schema decides what is valid, as for every event).
   */
  function rejection(raw: unknown, error: ErrorInfo, seq: number): MigrationEvent | undefined {
    const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const mid = r['migrationId'];
    if (typeof mid !== 'string') return undefined;
    const cid = r['commandId'];
    const candidates = typeof cid === 'string' ? [{ commandId: cid, error }, { error }] : [{ error }];
    return candidates
      .map((data) => event(mid, 'CommandRejected', data, `${mid}:rejected:${seq}`))
      .find((e) => validators.validate('event', e).ok);
  }

  /**
   * Refuse a message for good: park it, record CommandRejected when it names a valid migration, and term it; true
   * then. When the bus cannot take the dead letter or the record right now, the message is delivered again later
   * instead (false).
   */
  async function refuse(msg: JsMsg, error: ErrorInfo, raw?: unknown): Promise<boolean> {
    log.error({ subject: msg.subject, seq: msg.seq, err: error }, 'command refused and parked');
    try {
      await parking.park(
        { subject: msg.subject, seq: msg.seq, data: msg.data },
        `${error.code}: ${error.message}`,
      );
      await recordRejection(raw, clipped(error), msg.seq);
      msg.term(); // no reason: nats-server 2.9 takes `+TERM` alone (a reason needs 2.10.4)
      return true;
    } catch (err) {
      log.error({ err, seq: msg.seq }, 'could not park the refused command; it will be delivered again');
      msg.nak(busRetryMs);
      return false;
    }
  }

  /** Append the rejection; one the log refuses for good (not the bus failing) stays recorded as a dead letter only. */
  async function recordRejection(raw: unknown, error: ErrorInfo, seq: number): Promise<void> {
    const rejected = rejection(raw, error, seq);
    if (!rejected) return;
    // A finished migration's log ends with its terminal event: a stray command (e.g. one delivered late or to the
    // wrong node after a server failure) is only parked, never recorded after the end.
    const { events } = await eventLog.read(rejected.migrationId);
    if (events.some((e) => isTerminalEvent(e.event))) {
      log.warn({ seq, migrationId: rejected.migrationId }, 'refused a command of a finished migration');
      return;
    }
    try {
      await eventLog.append(rejected);
    } catch (err) {
      if (isTransient(err)) throw err;
      log.error({ err, seq }, 'the rejection cannot be recorded in the log; it is in the dead letters');
    }
  }

  /**
   * A handler threw. The bus being unreachable says nothing about the command: it is delivered again. Anything else
   * would happen again on every delivery: the command is refused (parked, recorded, termed).
   */
  async function handlerFailed(d: CommandDelivery, err: unknown): Promise<void> {
    if (isTransient(err)) {
      log.warn(
        { err, commandId: d.command.commandId },
        'the bus failed while handling a command; delivering it again',
      );
      d.msg.nak(busRetryMs);
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    const error = { code: commandRefusals.unhandled, message: `handling the command failed: ${message}` };
    if (await refuse(d.msg, error, d.command)) told(d.command);
  }

  /**
   * Refuse a message nobody may have sent or nobody intended: reported (warn, counted), parked as a dead letter and
   * termed, and nothing else — a message that proves nothing must not make this service write into any log.
   */
  async function quarantine(msg: JsMsg, code: string, reason: string, claimed?: string): Promise<boolean> {
    trust.reject({
      kind: 'command',
      subject: msg.subject,
      seq: msg.seq,
      ...(claimed ? { claimed } : {}),
      reason,
    });
    try {
      await parking.park({ subject: msg.subject, seq: msg.seq, data: msg.data }, `${code}: ${reason}`);
      msg.term();
      return true;
    } catch (err) {
      log.error({ err, seq: msg.seq }, 'could not park the refused command; it will be delivered again');
      msg.nak(busRetryMs);
      return false;
    }
  }

  /** Who signed the command, if a coordinator did (over exactly this subject, so for exactly this node). */
  function signedByCoordinator(msg: JsMsg): { ok: true } | { ok: false; reason: string; claimed?: string } {
    const v = trust.verify(msg.subject, msg.data, msg.headers);
    if (!v.ok)
      return v.claimed
        ? { ok: false, reason: v.reason, claimed: v.claimed }
        : { ok: false, reason: v.reason };
    if (v.identity && v.identity.role !== 'coordinator')
      return {
        ok: false,
        reason: `signed by ${v.identity.name}, not a coordinator`,
        claimed: v.identity.name,
      };
    return { ok: true };
  }

  /**
   * A command runs only as an intent of its migration: the authentic log holds a StepIntended with this very command
   * (the signature binds the subject to the body, this binds the body to the log). Once the migration has ended, only
   * a command whose outcome is in the log gets through, for the handler to skip it as the duplicate it is (a late
   * redelivery); a replayed one that never ran, or one no log intends, is refused.
   *
   * Always on a read of the stream, never on a log this process keeps current (withReadCache's held): that one may be
   * behind, and what decides here is what it may lack, an end or an outcome. A command that waited behind a long step
   * while the coordinator gave it up and rolled the migration back would run on a follow that lags. Tried for the
   * frozen window (1-2 ms before each agent command) and taken out for that reason.
   *
   * A read that shows no such intent is made again after each of limits.intentReadAgainMs before the refusal: a new
   * stream leader of an older nats-server may answer before it has applied the intent it took over. So is one of a
   * command that is not fresh (checkedOnFirstRead) while it shows neither the command's outcome nor its migration's
   * end: a read behind could lack either, and the command would run again, or run after the end (a restore after the
   * rollback that resumed the CT on its source). An end or an outcome read once is final (a read behind can lack one,
   * never show one). A stop during the waits returns nothing, and the caller hands the command back (it checks the
   * signal next).
   */
  async function unintended(
    d: CommandDelivery,
    signal: AbortSignal,
  ): Promise<{ why?: string; read?: { log: readonly MigrationEvent[]; lastSeq: number } }> {
    if (!trust.secure) return {};
    const cmd = d.command;
    const started = now();
    const end = laneEnds.get(cmd.migrationId);
    const turnFresh =
      end !== undefined && started - end.atMs < Math.min(limits.commandFreshMs, cmd.timeoutMs / 2);
    // Kept in hand through the reads and waits (a delivery beside others has no keep-alive of its lane).
    const alive = setInterval(() => tell(() => d.msg.working()), limits.commandAckWaitMs / 3);
    let firstShowedIntent: boolean | undefined;
    const got = await (async () => {
      const fresh =
        turnFresh ||
        checkedOnFirstRead({
          redelivered: d.msg.redelivered,
          storedMs: d.msg.time.getTime(),
          nowMs: started,
          timeoutMs: cmd.timeoutMs,
        }) ||
        !(await eventsReplicated());
      return readAgainUntil(
        () => readLog(cmd.migrationId),
        (r) => {
          const intended = intends(r.log, cmd);
          firstShowedIntent ??= intended;
          // A read short of an outcome this process appended is behind, whatever it shows.
          const reaches = r.lastSeq >= (end?.seq ?? 0);
          return intended && reaches && (fresh || commandFate(r.log, cmd.commandId) !== 'open');
        },
        { signal },
      );
    })().finally(() => clearInterval(alive));
    if (!got) return {};
    const { read, reads } = got;
    // The read's end is said with the refusal: a command refused in a cluster shows whether its reads were behind.
    const { log: events, lastSeq } = read;
    if (!intends(events, cmd))
      return {
        why: `${cmd.commandId} is not intended in the log of ${cmd.migrationId} (read ${reads} times in ${now() - started} ms, the last to sequence ${lastSeq}: ${events.length} events, the last ${events.at(-1)?.type ?? 'none'})`,
      };
    if (!firstShowedIntent)
      log.warn(
        { commandId: cmd.commandId, reads, lastSeq },
        "the command's intent was not in the first read of its log, only in a later one (a stream leader that had not applied it yet)",
      );
    else if (reads > 1)
      log.info(
        { commandId: cmd.commandId, reads, ms: now() - started, fate: commandFate(events, cmd.commandId) },
        'a command that is not fresh was read again: a read behind could lack its outcome or its end',
      );
    if (commandFate(events, cmd.commandId) === 'ended')
      return { why: `${cmd.migrationId} has ended without running ${cmd.commandId}` };
    return { read };
  }

  /**
   * Whether the event stream has replicas: only then can a read reach a new leader behind what it took over. A
   * stream on one server answers every read with all it stored, and a command that is not fresh is checked on its
   * first read too (a redelivery after an agent's restart costs no waits). Asked for each command that is not fresh
   * (a few), so a stream scaled up since counts at once.
   */
  async function eventsReplicated(): Promise<boolean> {
    const m = await retryTransient(() => jetstreamManager(nc));
    const info = await retryTransient(() => m.streams.info(streams.events));
    return info.config.num_replicas > 1;
  }

  async function readLog(mid: string): Promise<{ log: MigrationEvent[]; lastSeq: number }> {
    const { events, lastSeq } = await eventLog.read(mid);
    return { log: events.map((e) => e.event), lastSeq };
  }

  async function deliver(
    msg: JsMsg,
    handle: (d: CommandDelivery) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const signed = signedByCoordinator(msg);
    if (!signed.ok) {
      await quarantine(msg, commandRefusals.unauthenticated, signed.reason, signed.claimed);
      return;
    }
    const decoded = decode(msg);
    if (!decoded.ok) {
      await refuse(msg, decoded.error, decoded.raw);
      return;
    }
    const d: CommandDelivery = { command: decoded.command, msg };
    if (inOrder) return inLane(d, handle, signal);
    // Side by side: the next delivery does not wait for this one's check (a read of its log) and hand-over.
    const task = attempt(d, handle, signal)
      .catch((err: unknown) => handlerFailed(d, err))
      .catch(fail)
      .finally(() => besides.delete(task));
    besides.add(task);
  }

  /**
   * An in-order executor's command waits behind the commands of its migration handed over before it, kept alive
   * meanwhile (it is in hand: the server hands it to nobody else), and the queue goes on: the next command, of
   * another migration, runs beside it. A command whose turn comes after the process began to stop goes back to the
   * stream at once.
   */
  function inLane(
    d: CommandDelivery,
    handle: (d: CommandDelivery) => Promise<void>,
    signal: AbortSignal,
  ): void {
    hands?.took(d);
    const alive = setInterval(() => tell(() => d.msg.working()), limits.commandAckWaitMs / 3);
    void lanes
      .run(d.command.migrationId, () =>
        signal.aborted
          ? Promise.resolve(tell(() => d.msg.nak()))
          : handleInPlace(d, handle, signal).finally(() => laneEnded(d)),
      )
      .catch(fail)
      .finally(() => {
        clearInterval(alive);
        // Once the connection is closed, nothing this delivery was answered with (its ack, or the NAK that hands it
        // back) can have reached the server: it is still in hand there, and its record stays for the next process.
        if (!nc.isClosed()) hands?.letGo(d);
      });
  }

  /**
   * Check that the command is intended, then hand it over; throws what either throws. A stop that began during the
   * check hands the command back to the stream instead: nothing starts on the host once the process stops.
   */
  async function attempt(
    d: CommandDelivery,
    handle: (d: CommandDelivery) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const { why, read } = await unintended(d, signal);
    if (why !== undefined) {
      if (await quarantine(d.msg, commandRefusals.notIntended, why)) told(d.command);
      return;
    }
    if (signal.aborted) return tell(() => d.msg.nak());
    if (read) {
      d.log = read.log;
      d.logSeq = read.lastSeq;
    }
    await handle(d);
  }

  /**
   * An in-order executor's command whose handling fails on the bus is tried again here, the delivery kept alive (by
   * inLane), with a growing wait: delivered again later, it would come after the commands of its migration stored
   * behind it (a snapshot before its backup). Nothing of its migration runs meanwhile. It runs as a redelivery would:
   * a step the first try began is found by its marker and reconciled. When the process stops, it is handed back to
   * the stream at once.
   */
  async function handleInPlace(
    d: CommandDelivery,
    handle: (d: CommandDelivery) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    for (let wait = busRetryMs; ; wait = Math.min(wait * 2, maxHoldMs)) {
      try {
        return await attempt(d, handle, signal);
      } catch (err) {
        if (!isTransient(err) || signal.aborted) return await handlerFailed(d, err);
        log.warn(
          { err, commandId: d.command.commandId, retryInMs: wait },
          'the bus failed while handling a command; trying it again before any other of its migration',
        );
        tell(() => d.msg.working());
        await delay(wait, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) return tell(() => d.msg.nak());
      }
    }
  }

  /**
   * Open the durable consumer, then hand the commands to `handle` until `signal` aborts. Resolves once the consumer
   * exists and is being consumed (a service says it started only then); `ended` settles only when the consumer is
   * gone — the connection closed, the consumer or its stream deleted (`abort_on_missing_resource`, instead of waiting
   * forever for it to come back) — which the caller treats as fatal (exitWhenLoopEnds).
   */
  async function consume(
    handle: (d: CommandDelivery) => Promise<void>,
    signal: AbortSignal,
  ): Promise<{ ended: Promise<void> }> {
    const jsm = await retryTransient(() => jetstreamManager(nc));
    const durable = commandConsumerName(actor.node, executor);
    await retryTransient(() =>
      ensureDurable(jsm, streams.commands, {
        durable_name: durable,
        filter_subject: subjects.commands(actor.node, executor),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(limits.commandAckWaitMs),
        max_deliver: -1,
        // Several commands in hand at once: an in-order executor runs each migration's in turn (inLane), another
        // executor checks and hands over each as it comes (deliver). A durable an older version made with another
        // count is changed in place (ensureDurable).
        max_ack_pending: limits.commandsInHand,
      }),
    );
    const consumer = await retryTransient(() => jetstream(nc).consumers.get(streams.commands, durable));
    const iter = await consumer.consume({
      max_messages: 1,
      expires: limits.pullExpiresMs,
      abort_on_missing_resource: true,
    });
    const close = () => void iter.close();
    endLoop = close;
    if (signal.aborted) close();
    else signal.addEventListener('abort', close, { once: true });
    // The loop may also end on its own (the connection closed, the consumer deleted, a failure of the queue's own):
    // the commands in hand then stop as on a stop.
    const loopEnded = new AbortController();
    const stopping = AbortSignal.any([signal, loopEnded.signal]);
    return { ended: pump(iter, handle, { stopping, stop: signal, loopEnded: () => loopEnded.abort() }) };
  }

  async function pump(
    iter: AsyncIterable<JsMsg>,
    handle: (d: CommandDelivery) => Promise<void>,
    how: { stopping: AbortSignal; stop: AbortSignal; loopEnded: () => void },
  ): Promise<void> {
    try {
      for await (const msg of iter) {
        await deliver(msg, handle, how.stopping);
        if (how.stopping.aborted) break;
      }
    } finally {
      // The commands in hand end first: the one running in each lane runs to its end (a retry on the bus stops), the
      // ones waiting behind it go back to the stream. A loop that ended on its own waits for them a while only.
      how.loopEnded();
      await commandsEnded(how.stop.aborted);
      // Their answers (the hand-backs above, the last acks) are only in the client's buffer yet, and a process whose
      // loop ended exits next: sent first, for a moment, while the connection is open. Their records are gone by now.
      if (!nc.isClosed())
        await Promise.race([
          nc.flush().catch(() => undefined),
          delay(answersFlushMs, undefined, { ref: false }),
        ]);
    }
    if (broken) throw broken.err;
  }

  /** The commands in hand ended: all of them on a stop; on a loop that ended on its own, all or the grace over. */
  async function commandsEnded(stopped: boolean): Promise<void> {
    const all = Promise.all([lanes.idle(), Promise.all(besides)]).then(() => true);
    if (stopped) return void (await all);
    const grace = new AbortController();
    const ended = await Promise.race([
      all,
      delay(lostConsumerGraceMs, false, { signal: grace.signal, ref: false }).catch(() => false),
    ]).finally(() => grace.abort());
    if (!ended)
      log.error(
        { graceMs: lostConsumerGraceMs },
        'the command consumer ended with commands still running: going on without them (the next process recovers them, as after a crash)',
      );
  }

  return {
    consume,
    refuse,
    handlerFailed,
    /** Messages this process parked (for its discovery stats). */
    get parked(): number {
      return parking.count;
    },
  };
}

export type CommandQueue = ReturnType<typeof createCommandQueue>;

/** The log holds a StepIntended of exactly this command. */
function intends(log: readonly MigrationEvent[], cmd: StepCommand): boolean {
  const want = canonicalJson(cmd);
  return log.some(
    (e) => e.type === 'StepIntended' && e.data.commandId === cmd.commandId && canonicalJson(e.data) === want,
  );
}

/** JSON with object keys sorted: the same command compares equal however its keys were ordered. */
function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : x,
  );
}

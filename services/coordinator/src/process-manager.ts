import type { NatsConnection } from '@nats-io/transport-node';
import {
  ConcurrencyConflictError,
  createSerialByKey,
  buckets,
  encodeJson,
  limits,
  commandStoredAt,
  openBucket,
  sendCommand,
  stepTimeoutsMs,
  streamStallMs,
  type CoordinatorMetrics,
  type EventLog,
  type Logger,
  type StoredEvent,
  type Trust,
} from '@haul/bus';
import {
  CommandRejectedError,
  commandsToSend,
  decideUntilStable,
  evolve,
  fold,
  initialState,
  inFlight,
  nextDeadline,
  projectStatus,
  type DecideInput,
  type DecideMeta,
  type MigrationState,
} from '@haul/domain';
import type { ErrorInfo, MigrationEvent, MigrationStatus, StepCommand, Validators } from '@haul/schemas';
import { beforeFirstStep, releaseAdmission, type Admission } from './admission.ts';
import { createSeenSequences } from './seen-sequences.ts';
import { createTransferReports } from './transfer-reports.ts';

export type CoordinatorSettings = {
  node: string;
  frozenLeaseMs: number;
  maxAttempts: number;
  /** Quiet time after which an active migration is checked against the log (default limits.coordinatorResyncMs). */
  resyncMs?: number;
  /** A transfer that neither moves bytes nor reports a wait for this long is given up (default streamStallMs). */
  stallMs?: number;
};

/**
 * A migration as this process folded it: the state of its log up to the stream sequence `lastSeq`, nothing after;
 * `settled` once decide (Advance) had nothing more to add to exactly this state.
 */
type Folded = { state: MigrationState; lastSeq: number; settled?: boolean };

/** A migration's state brought up to date before a decision, and whether that changed it. */
type Caught = { folded: Folded; changed: boolean };

/** Migrations that ended here are remembered this many at most (with their last sequence), newest kept. */
const maxEnded = 10_000;
/** Terminal statuses kept for the seal's snapshot (sealer.ts takes each when its terminal event comes back), newest. */
const maxUnsealed = 1_000;

/**
 * The process manager. The log is the only truth: per active migration it keeps the log folded with the core's
 * evolve and the stream sequence it is folded up to, advanced by the events the coordinator's consumer delivers
 * (an event that is not the next one of its migration — a gap — makes it read the part of the log it missed). Then
 * it asks decide what comes next, appends the new events with compare-and-set on the migration's subject (a lost
 * race reads what the other writer appended, and decides again), and sends the commands it intended. Each
 * migration has one timer, for its earliest step deadline or a resync after a quiet time. Nothing it keeps is
 * needed after a restart: everything is rebuilt from the log.
 */
export function createProcessManager(
  nc: NatsConnection,
  validators: Validators,
  eventLog: EventLog,
  settings: CoordinatorSettings,
  log: Logger,
  trust: Trust,
  /** Asked before a migration's first step whether it is admitted; without it (tests) every migration is. */
  admission?: Pick<Admission, 'confirm'>,
  /** Told each projected status (the migrations-by-phase and terminal metrics). */
  metrics?: Pick<CoordinatorMetrics, 'projected'>,
) {
  const serialByMigration = createSerialByKey();
  const active = new Set<string>();
  const folded = new Map<string, Folded>();
  const seen = createSeenSequences();
  /**
   * Migration → the stream sequences of its events that reached this process and were not settled: still being
   * judged (a judge that reads back over the network), or not taken (the judging failed: handed back to come again,
   * or parked). The consumer hands events of different migrations over side by side, so a migration's later event
   * can be delivered before an earlier one that came first, or instead of one that failed: folding it then would
   * skip the earlier one for good (the state's sequence already past it). A later event reads the log instead, which
   * holds it; once the state's sequence is past it, it no longer counts.
   */
  const unsettled = new Map<string, Set<number>>();
  /**
   * Migrations whose folded state may lack an event that reached this process: one was not taken (its judging or its
   * turn failed: handed back or parked), or the state was dropped after a failure. Their next delivery is not trusted
   * to be the next event, not even a MigrationRequested: the log is read whole first.
   */
  const untrusted = new Set<string>();
  const timers = new Map<string, NodeJS.Timeout>();
  const failures = new Map<string, number>();
  /** Migration → the sequence of its terminal event, for those that ended here: their events coming back are old. */
  const ended = new Map<string, number>();
  /** Migration → its terminal status, projected here and not yet taken for a seal, and how many events it folds. */
  const unsealed = new Map<string, { status: MigrationStatus; events: number }>();
  /**
   * Migration → the ids of the commands this process sent and the stream stored, for commandsToSend's order rule.
   * Forgotten at the migration's end, and the oldest beyond maxEnded migrations: a command forgotten early is only
   * sent again, as a duplicate.
   */
  const sent = new Map<string, Set<string>>();
  /**
   * Migration → when this process stored each of its commands in the command stream (deadlines.ts SentAt): a step's
   * time counts from then when that is later than its intent (a coordinator that died between the two), within the
   * stream's duplicate window of the intent. A send the stream answered as a duplicate counts from when the stream
   * stored the command (storedTimeOf): another coordinator may have stored it only a moment before, having taken
   * the migration over from one that died before sending, and counted from the intent the step would be given up
   * early by every coordinator but that one. Forgotten with the migration, and the oldest beyond maxEnded migrations
   * (a step then counts from its intent, as before).
   */
  const sentAt = new Map<string, Record<string, number>>();
  /**
   * When the command stream stored the command at `seq`, a duplicate's answer; now when it is no longer there or
   * cannot be read: never earlier than it was.
   */
  const storedTimeOf = (seq: number): Promise<number> =>
    commandStoredAt(nc, seq).then(
      (at) => at ?? Date.now(),
      (err: unknown) => {
        log.warn(
          { err, seq },
          'could not read when a command sent before was stored: its step counts from now',
        );
        return Date.now();
      },
    );
  const storedAt = (mid: string, commandId: string, at = Date.now()): void => {
    // A command intended longer ago than the stream's duplicate window may have been stored then: the stream no
    // longer remembers its id, and its store now says nothing of when its executor could have begun it.
    const st = folded.get(mid)?.state;
    const key = st?.byCommand?.[commandId];
    const intendedAt = key ? Date.parse(st.steps[key]!.intendedAt) : Date.now();
    if (Date.now() - intendedAt >= limits.duplicateWindowMs) return;
    let of = sentAt.get(mid);
    if (!of) {
      sentAt.set(mid, (of = {}));
      if (sentAt.size > maxEnded) sentAt.delete(sentAt.keys().next().value!);
    }
    of[commandId] ??= at;
  };
  const resyncMs = settings.resyncMs ?? limits.coordinatorResyncMs;
  const stallMs = settings.stallMs ?? streamStallMs;
  const reports = createTransferReports(nc, validators);
  let stopped = false;

  const meta = (): DecideMeta => ({
    now: new Date().toISOString(),
    actor: { service: 'coordinator', node: settings.node },
    timeoutsMs: { ...stepTimeoutsMs },
    frozenLeaseMs: settings.frozenLeaseMs,
    maxAttempts: settings.maxAttempts,
    stallMs,
    commandFreshMs: limits.commandFreshMs,
  });

  /** Run one migration's work strictly one at a time in this process. */
  const serial = <T>(mid: string, fn: () => Promise<T>): Promise<T> => serialByMigration.run(mid, fn);

  /** The whole log of a migration, folded (what the API reads; the folded states are not touched). */
  async function load(mid: string): Promise<Folded> {
    const { events, lastSeq } = await eventLog.read(mid);
    return {
      state: fold(
        events.map((e) => e.event),
        initialState(),
      ),
      lastSeq,
    };
  }

  function keep(mid: string, f: Folded): Folded {
    if (f.state.migrationId) folded.set(mid, f);
    return f;
  }

  /** Bring a migration's state up to the log: read only what is not folded yet (the whole log when nothing is). */
  async function catchUp(mid: string): Promise<Caught> {
    const f = folded.get(mid);
    if (!f) {
      const whole = keep(mid, await load(mid));
      untrusted.delete(mid);
      return { folded: whole, changed: true };
    }
    const { events, lastSeq } = await eventLog.read(mid, { afterSeq: f.lastSeq });
    if (lastSeq < f.lastSeq) return { folded: keep(mid, await load(mid)), changed: true }; // the log was reset
    if (lastSeq === f.lastSeq) return { folded: f, changed: false };
    // Only what decoded is folded (a message that is no event is skipped, as a whole read skips it); the sequence
    // moves past it all, so the next compare-and-set expects what is really last.
    const next = fold(
      events.map((e) => e.event),
      f.state,
    );
    return { folded: keep(mid, { state: next, lastSeq }), changed: true };
  }

  /**
   * No event of `mid` between `from` and `to` is unsettled. What is unsettled at or before `from` is folded by now
   * (read with the log after it), and no longer kept.
   */
  function noneUnsettled(mid: string, from: number, to: number): boolean {
    const of = unsettled.get(mid);
    if (!of) return true;
    for (const seq of of) if (seq < from) of.delete(seq);
    if (of.size === 0) unsettled.delete(mid);
    return ![...of].some((seq) => seq >= from && seq <= to);
  }

  /**
   * Fold delivered events, in the order the consumer delivered them. An event is the next one of its migration when
   * every stream sequence between the folded one and its own reached this process and none of them is an event of
   * this migration still unsettled; otherwise the missing part of the log is read. A MigrationRequested is always a
   * migration's first event (it is appended with expectedLastSeq 0), so a new migration costs no read: on its first
   * delivery, to a process that never dropped an event or a state of that migration (a MigrationRequested delivered
   * again, after a restart or a hand-back, may be of a migration that went on, or ended, since).
   */
  async function absorb(mid: string, delivered: Delivered[]): Promise<Caught> {
    let f = folded.get(mid);
    let changed = false;
    for (const d of delivered) {
      if (f && d.seq <= f.lastSeq) continue; // folded already: an append of this process, or read after a gap
      const isNext = f
        ? seen.covered(f.lastSeq + 1, d.seq - 1) && noneUnsettled(mid, f.lastSeq + 1, d.seq - 1)
        : d.event.type === 'MigrationRequested' && !d.redelivered && !untrusted.has(mid);
      if (isNext) f = keep(mid, { state: evolve(f?.state ?? initialState(), d.event), lastSeq: d.seq });
      else f = (await catchUp(mid)).folded;
      changed = true;
    }
    return { folded: f ?? (await catchUp(mid)).folded, changed };
  }

  /**
   * Append decided events with compare-and-set, one after the other. Returns the events that made it into the log
   * (a prefix of `events`) and whether all did: a writer that loses the race part-way has still appended a prefix,
   * and whatever commands that prefix intended must be sent like any others. `duplicate`: an event id was already
   * in the log: this process's own earlier try (appended, and what follows appended after it), or another
   * coordinator's copy (it decided the same from the same point, its data maybe another's): then the prefix ends
   * before it, and its commands are sent as the log holds them, after a read (decideAndAppend).
   */
  async function appendAll(
    events: MigrationEvent[],
    lastSeq: number,
  ): Promise<{
    appended: MigrationEvent[];
    complete: boolean;
    duplicate: boolean;
    lastSeq: number;
  }> {
    let seq = lastSeq;
    let duplicate = false;
    const appended: MigrationEvent[] = [];
    for (const e of events) {
      try {
        const ack = await eventLog.append(e, { expectedLastSeq: seq, msgId: e.eventId });
        seq = ack.seq;
        duplicate ||= ack.duplicate;
        // Another coordinator's copy of this event: the log holds its data, maybe not ours (its own config or
        // version). Nothing of ours is appended after it or sent for it; the caller reads the log and decides again.
        if (ack.otherCopy) return { appended, complete: false, duplicate, lastSeq: seq };
        appended.push(e);
      } catch (err) {
        if (err instanceof ConcurrencyConflictError)
          return { appended, complete: false, duplicate, lastSeq: seq };
        throw err;
      }
    }
    return { appended, complete: true, duplicate, lastSeq: seq };
  }

  /**
   * Commands, published at once in the order given, each recorded as sent once the stream stored it. An executor's
   * queue runs them in the order they are stored, and they are stored in the order they are published: sendCommand
   * publishes before its first await, and the server takes one connection's publishes in order. One whose publish is
   * tried again (the bus failing) can be stored after the next; its agent then runs it first anyway (runsBefore,
   * dispatch-order.ts). Before, each waited for the one before it to be stored, and a decision's last commands (the
   * frozen window's final stream and local disk pass, fourth and fifth) reached their executors one round trip later
   * each. Three demos each way, interleaved: the frozen window's five commands stored 3.0-5.3 ms after their intents
   * instead of 9.2-11.3, the final stream's at its streamer after 5.1-7.3 ms instead of 7.2-15.2, the local disk
   * pass's after 8.3-10.3 instead of 11.7-19.5 (neither is on the demo's critical path: frozen 1.38-1.50 s against
   * 1.39-1.46).
   *
   * A decision's are sent once all its intents are in the log, not each as soon as its own intent is appended: its
   * executor could then append its outcome before the decision's next intent, whose compare-and-set would fail, and
   * the rest of the decision would wait for a read of the log. Tried and measured (three demos each way,
   * interleaved): the backup's intent → outcome went from 23, 40, 33 ms to 14, 31, 31, and the race did happen: the
   * final stream's and the local disk pass's intents, last in the decision, came 8-45 ms after the final dump's
   * outcome instead of 3-9; frozen time and the overhead per step stayed within the runs' spread. Not kept.
   */
  async function send(mid: string, cmds: StepCommand[]): Promise<void> {
    let mine = sent.get(mid);
    if (!mine) {
      sent.set(mid, (mine = new Set()));
      if (sent.size > maxEnded) sent.delete(sent.keys().next().value!);
    }
    const stored = await Promise.allSettled(
      cmds.map(async (c) => {
        const r = await sendCommand(nc, validators, trust, c);
        return r.duplicate && !sentAt.get(mid)?.[c.commandId] ? storedTimeOf(r.seq) : Date.now();
      }),
    );
    const failed: { commandId: string; err: unknown }[] = [];
    stored.forEach((r, i) => {
      const { commandId } = cmds[i]!;
      if (r.status === 'fulfilled') {
        mine.add(commandId);
        storedAt(mid, commandId, r.value);
      } else failed.push({ commandId, err: r.reason });
    });
    if (failed.length === 0) return;
    // Each by its id here (a bus error does not name the command); the first is thrown, and the turn tried again.
    for (const { commandId, err } of failed)
      log.warn(
        { err, migrationId: mid, commandId },
        'a command could not be sent: sent again at the next turn',
      );
    throw failed[0]!.err;
  }

  /**
   * The commands of the intents `appended` after the state `before`, behind those in flight on the same agents that
   * this process did not send (another coordinator appended them and may not have sent them yet): commandsToSend.
   */
  const sendDecided = (mid: string, before: MigrationState, appended: MigrationEvent[]): Promise<void> =>
    send(
      mid,
      commandsToSend(before, intendedCommands(appended), (id) => sent.get(mid)?.has(id) ?? false),
    );

  /**
   * The commands in flight that this process has not sent, oldest intent first: another coordinator intended them and
   * may have died before sending them, or a send of this process failed part-way (the bus down past its retries) and
   * nothing decided since would send them again. A command the stream holds already is dropped as a duplicate.
   */
  const sendUnsent = (mid: string, s: MigrationState): Promise<void> =>
    send(
      mid,
      inFlight(s)
        .filter((r) => !sent.get(mid)?.has(r.command.commandId))
        .sort((a, b) => a.order - b.order)
        .map((r) => r.command),
    );

  async function project(state: MigrationState, lastSeq: number): Promise<void> {
    const status = projectStatus(state, lastSeq);
    if (!status) return;
    const kv = await openBucket(nc, buckets.status);
    await kv.put(status.migrationId, encodeJson(status));
    // A migration's end counts once in this process (a terminal state projected again is not a second end).
    if (!state.terminal || !ended.has(status.migrationId)) metrics?.projected(status);
    if (state.terminal) {
      active.delete(status.migrationId);
      forget(status.migrationId);
      ended.delete(status.migrationId);
      ended.set(status.migrationId, lastSeq);
      if (ended.size > maxEnded) ended.delete(ended.keys().next().value!);
      unsealed.set(status.migrationId, { status, events: state.events });
      if (unsealed.size > maxUnsealed) unsealed.delete(unsealed.keys().next().value!);
      // Its CT and nodes are free for the next admission (if this crashes first, the admission reaper frees them).
      await releaseAdmission(nc, log, status.migrationId);
    } else active.add(status.migrationId);
  }

  const advance = (): DecideInput => ({ kind: 'Advance', meta: meta() });

  /**
   * The decision for a migration whose admission was lost before its first step: cancel it, saying why. Decided again
   * after a lost compare-and-set on a log that shows a first step (another coordinator confirmed the admission, as it
   * stood then, and went on), the refusal no longer holds: the migration advances.
   */
  const refusedBy =
    (error: ErrorInfo) =>
    (s: MigrationState): DecideInput =>
      beforeFirstStep(s)
        ? {
            kind: 'Cancel',
            reason: `admission lost before the first step (${error.code}): ${error.message}`,
            meta: meta(),
          }
        : advance();

  /**
   * Decide and append until the log and the decision agree; send what was intended. When another writer got
   * there first (a lost compare-and-set, or our events already in the log as its copies), read what it appended
   * and decide again. Returns the state and whether the log changed.
   */
  async function decideAndAppend(
    mid: string,
    input: (s: MigrationState) => DecideInput,
    start: Folded,
  ): Promise<{ folded: Folded; appended: boolean }> {
    let f = start;
    let changed = false;
    let inputOf = input;
    for (let attempt = 0; attempt < 20; attempt++) {
      if (!f.state.migrationId) return { folded: f, appended: changed };
      const given = inputOf(f.state);
      const { events, state: next } = decideUntilStable(given, f.state);
      if (events.length === 0) {
        const settled = f.settled === true || given.kind === 'Advance' || given.kind === 'Tick';
        return { folded: keep(mid, { ...f, settled }), appended: changed };
      }
      const { appended, complete, duplicate, lastSeq } = await appendAll(events, f.lastSeq);
      // The input's own event comes first: once anything of this decision is in the log, the input was taken (an
      // operator's retry, resolve or cancel recorded), and the rounds after it only advance. Decided again, it would be
      // refused on a log that holds it (HAUL_NOT_STUCK, HAUL_ALREADY_ROLLING_BACK), and its operator told no.
      if (appended.length > 0 && given.kind !== 'Advance' && given.kind !== 'Tick') inputOf = advance;
      await sendDecided(mid, f.state, appended);
      if (!complete || duplicate) {
        const caught = await catchUp(mid);
        changed ||= caught.changed;
        f = caught.folded;
        // The other writer's intents, as the log holds them: its copies of ours, or a decision of its own that won
        // the compare-and-set (a timeout its timer gave up, a cancel), which deciding again here may add nothing to.
        // It may have died before sending them, and its events coming back would find this state settled (a command
        // the stream holds already is a duplicate).
        await sendUnsent(mid, f.state);
        continue;
      }
      for (const e of events) logDecided(mid, e);
      // decideUntilStable ended on an Advance that added nothing: this state is settled.
      return { folded: keep(mid, { state: next, lastSeq, settled: true }), appended: true };
    }
    throw new Error(`${mid}: lost the compare-and-set 20 times in a row`);
  }

  /**
   * What the coordinator decided, in its own log: a migration's milestones at info, with their reason when they have
   * one (why it rolls back, resumes on its source or waits for an operator belongs there, not only in the events),
   * each step's intent at debug (HAUL_LOG_LEVEL=debug shows them). The intents are nearly half of a migration's
   * events, and every one of them is in the event log: at info, bench:control's 1,000 migrations wrote 21,500 such
   * lines, which drowned the milestones and cost the coordinator CPU of its own (pino's serialization and writes:
   * about 5 % of its CPU in a profile of 300 migrations).
   */
  function logDecided(mid: string, e: MigrationEvent): void {
    if (e.type === 'StepIntended') {
      log.debug({ migrationId: mid, type: e.type, step: e.data.step, node: e.data.node }, 'decided');
      return;
    }
    const data = e.data as { reason?: unknown };
    const why = typeof data.reason === 'string' ? { reason: data.reason } : {};
    log.info({ migrationId: mid, type: e.type, ...why }, 'decided');
  }

  /**
   * One turn of a migration, inside serial(): bring its state up to date, decide (unless `whenChanged` and nothing
   * changed a settled state: an event this process appended itself coming back), append, send, project what
   * changed, and arm its timer. A failure forgets the folded state (the next turn reads the log) and tries again
   * later; a refusal of the core (a cancel too late) changes nothing.
   */
  async function turn(
    mid: string,
    bringUp: () => Promise<Caught>,
    input: (s: MigrationState) => DecideInput,
    whenChanged = false,
  ): Promise<MigrationState> {
    try {
      const { folded: f, changed } = await bringUp();
      if (whenChanged && !changed && f.settled) return f.state;
      await sendUnsent(mid, f.state);
      const refused = await admission?.confirm(f.state);
      const r = await decideAndAppend(mid, refused ? refusedBy(refused) : input, f);
      if (changed || r.appended) await project(r.folded.state, r.folded.lastSeq);
      failures.delete(mid);
      arm(mid, r.folded.state);
      return r.folded.state;
    } catch (err) {
      if (err instanceof CommandRejectedError) {
        // Refused on the log as read for it (a cancel of a migration that ended meanwhile): what that read brought is
        // projected as any turn projects it, a terminal state ended here (no event of it will come back to do it).
        const f = folded.get(mid);
        const projected = f
          ? await project(f.state, f.lastSeq).then(
              () => true,
              (e: unknown) => (log.warn({ err: e, migrationId: mid }, 'projection failed'), false),
            )
          : true;
        // Not projected: the next turn reads the log again and projects it (a state kept would seem unchanged).
        if (!projected) {
          drop(mid);
          retryLater(mid);
        } else arm(mid, folded.get(mid)?.state ?? initialState());
      } else {
        drop(mid);
        retryLater(mid);
      }
      throw err;
    }
  }

  /** The migration's one timer: its earliest step deadline, or a resync once it has been quiet for resyncMs. */
  function arm(mid: string, state: MigrationState): void {
    if (!state.migrationId || state.terminal) return disarm(mid);
    const next = nextDeadline(
      state,
      { stallMs, freshMs: limits.commandFreshMs },
      reports.of(mid),
      sentAt.get(mid),
    );
    wakeAt(mid, Math.min(next ?? Infinity, Date.now() + resyncMs));
  }

  function wakeAt(mid: string, at: number): void {
    disarm(mid);
    if (stopped) return;
    const timer = setTimeout(
      () => {
        timers.delete(mid);
        void tick(mid).catch((err: unknown) => log.warn({ err, migrationId: mid }, 'tick failed'));
      },
      Math.max(0, at - Date.now()),
    );
    timer.unref(); // the consumer keeps the coordinator alive, not its timers
    timers.set(mid, timer);
  }

  function disarm(mid: string): void {
    clearTimeout(timers.get(mid));
    timers.delete(mid);
  }

  /** After a failure: try again from the log, sooner at first, at most every resyncMs. */
  function retryLater(mid: string): void {
    const n = (failures.get(mid) ?? 0) + 1;
    failures.set(mid, n);
    wakeAt(mid, Date.now() + Math.min(resyncMs, 250 * 2 ** n));
  }

  /** The folded state may lack what this turn was given: the next turn reads the whole log. */
  function drop(mid: string): void {
    folded.delete(mid);
    untrusted.add(mid);
  }

  function forget(mid: string): void {
    folded.delete(mid);
    untrusted.delete(mid);
    unsettled.delete(mid);
    sent.delete(mid);
    sentAt.delete(mid);
    failures.delete(mid);
    reports.forget(mid);
    disarm(mid);
  }

  function cached(mid: string): () => Promise<Caught> {
    return async () => {
      const f = folded.get(mid);
      return f ? { folded: f, changed: false } : catchUp(mid);
    };
  }

  /**
   * Take an input for a migration: an advance on the state held, an operator's (a cancel, retry or resolve) on the
   * log as it is now, read after what is held. The state held may lag behind the log: another coordinator drives the
   * migration now (its events go to that one's consumer), or an event is on its way here. Taken on a stale state, an
   * input only loses its compare-and-set and is decided again on the log; refused on one (HAUL_NOT_STUCK for a
   * migration that became stuck since), its operator would be told no for what the log allows.
   */
  function step(mid: string, input: (s: MigrationState) => DecideInput = advance): Promise<MigrationState> {
    return serial(mid, () => turn(mid, input === advance ? cached(mid) : () => catchUp(mid), input));
  }

  /**
   * Step timeouts and stalls become failures (which the core rolls back or retries); first read what was missed, and
   * the latest reports of the transfers in flight (the stall rule's evidence, outside the log).
   */
  function tick(mid: string): Promise<MigrationState> {
    return serial(mid, () =>
      turn(
        mid,
        async () => {
          const caught = await catchUp(mid);
          await reports.refresh(mid, caught.folded.state);
          return caught;
        },
        () => ({
          kind: 'Tick',
          meta: {
            ...meta(),
            transfers: reports.of(mid),
            ...(sentAt.has(mid) ? { sentAt: sentAt.get(mid)! } : {}),
          },
        }),
      ),
    );
  }

  /**
   * Advance a migration because an event of it was delivered. While a turn of it is queued and has not started,
   * later events join it: the turn folds them all, in order, and one decision covers them.
   */
  const pending = new Map<string, Delivered[]>();
  const queued = new Map<string, Promise<void>>();
  function stepSoon(mid: string, delivered: Delivered): Promise<void> {
    const waiting = pending.get(mid);
    if (waiting) {
      waiting.push(delivered);
      return queued.get(mid)!;
    }
    pending.set(mid, [delivered]);
    const p = serial(mid, async () => {
      const end = ended.get(mid) ?? 0;
      const events = (pending.get(mid) ?? []).filter((d) => d.seq > end);
      pending.delete(mid);
      queued.delete(mid);
      if (events.length > 0) await turn(mid, () => absorb(mid, events), advance, true);
    });
    queued.set(mid, p);
    return p;
  }

  return {
    active,
    meta,
    step,
    load,
    appendAll,
    tick,
    /**
     * A message of the event stream reached this coordinator (any message, in the order they came), on the subject
     * of migration `mid` when it is one: unsettled until `settled` says so.
     */
    received(seq: number, mid?: string): void {
      seen.saw(seq);
      if (mid === undefined) return;
      const of = unsettled.get(mid);
      if (of) of.add(seq);
      else unsettled.set(mid, new Set([seq]));
    },
    /**
     * The message `received` said came is settled: delivered (its turn over), or nothing to fold (not believed, a
     * seal). One that is not taken is never settled here: see `unsettled`.
     */
    settled(seq: number, mid: string): void {
      const of = unsettled.get(mid);
      of?.delete(seq);
      if (of?.size === 0) unsettled.delete(mid);
    },
    /** An event the consumer delivered: fold it into its migration and advance it. */
    deliver(stored: StoredEvent, redelivered = false): Promise<void> {
      return stepSoon(stored.event.migrationId, { ...stored, redelivered });
    },
    /**
     * The terminal status this process projected for `mid`, for its seal, once: only if it folded exactly the seal's
     * `events` events up to `seq` (the seal's chain covers what it folded); else undefined.
     */
    terminalStatus(mid: string, seq: number, events: number): MigrationStatus | undefined {
      const t = unsealed.get(mid);
      unsealed.delete(mid);
      return t?.status.lastSeq === seq && t.events === events ? t.status : undefined;
    },
    /** Whether this process drives the migration already (it has its state, its timer, or a turn under way). */
    holds(mid: string): boolean {
      return active.has(mid) || timers.has(mid) || serialByMigration.busy(mid);
    },
    /**
     * Drive a migration this process does not hold (one of the admission ledger): its events went to a coordinator
     * that died, or were never delivered. Fold it from the log and take a turn: it sends again the commands in flight
     * (the one that intended them may have died before sending; a duplicate is dropped or found done), decides and
     * arms its timer.
     */
    adopt(mid: string): Promise<void> {
      return serial(mid, async () => {
        const { folded: f } = await catchUp(mid);
        // Not in the log yet (admitted, its append under way) or ended (the reaper frees its entry): nothing to drive.
        if (!f.state.migrationId || f.state.terminal) return void folded.delete(mid);
        await turn(mid, () => Promise.resolve({ folded: f, changed: true }), advance);
      });
    },
    /** No more timers (the coordinator stops). */
    stop(): void {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}

/** An event the consumer delivered; `redelivered`: not its first delivery (a hand-back, or a process before this). */
type Delivered = StoredEvent & { redelivered: boolean };

const intendedCommands = (events: MigrationEvent[]): StepCommand[] =>
  events.flatMap((e) => (e.type === 'StepIntended' ? [e.data] : []));

export type ProcessManager = ReturnType<typeof createProcessManager>;

import { setTimeout as delay } from 'node:timers/promises';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  Registry,
  commandConsumerName,
  clearProgress,
  createCommandQueue,
  eventFactory,
  exitWhenLoopEnds,
  exposeMetrics,
  commandFate,
  limits,
  createEventLog,
  withReadCache,
  decodeJson,
  encodeJson,
  migrationLogger,
  offerHeaders,
  openProgress,
  putProgress,
  readAgainUntil,
  sentTo,
  signedRequest,
  serveDiscovery,
  streamerMetrics,
  streams,
  subjects,
  type CommandDelivery,
  type Logger,
  type MetricsConfig,
  type Trust,
} from '@haul/bus';
import {
  executorServices,
  type ErrorInfo,
  type MigrationEvent,
  type StreamArgs,
  type StreamOffer,
  type StreamOfferAccepted,
  type StreamOfferReply,
  type StreamResult,
  type Validators,
} from '@haul/schemas';
import { errorCodes, misaddressed } from '@haul/domain';
import { abortable, abortableTaking, createGiveUpWatch } from './given-up.ts';
import { planPass, withExtents, type PassPlan } from './disk-pass.ts';
import { buildManifest, type ManifestEntry } from './manifest.ts';
import { createPriorityGate, createSlots } from './priority.ts';
import { createProgressReporter, readBackWait, type ProgressReporter } from './progress-report.ts';
import { createRateLimiter } from './rate-limit.ts';
import { createDataServer, type DataListener, type DataServer, type PortRange } from './data-server.ts';
import { createReceiver, offeredIntent, transferIdOf, transferIntent } from './receiver.ts';
import { offerSignerRefusal } from './offer-signer.ts';
import { isStreamCommand, type StreamCommand } from './stream-command.ts';
import { registerStreamer, type Registration } from './registration.ts';
import { ConnectionLost, sendFiles, type SendOptions, type SendStats } from './sender.ts';
import type { TlsMaterial } from './tls.ts';
import { crc32Loaded } from './wire.ts';

/** Transfers a streamer runs at once as a sender (more commands wait for a slot, reporting that they wait). */
const MAX_TRANSFERS = 4;

export type StreamerConfig = {
  node: string;
  /** Address the sending side listens on for the receiver's data connection. */
  listenHost: string;
  /** Ports that listener may bind, the first free one taken (absent: one the system picks); registered in haul-streamers. */
  dataPorts?: PortRange;
  /** Address receivers should connect to (defaults to listenHost; set it when listening on 0.0.0.0). */
  advertiseHost?: string;
  /** Mutual TLS on data connections (both ends); absent: plaintext, which main.ts allows only with HAUL_INSECURE=1. */
  tls?: TlsMaterial;
  /** The receiving side only writes below these folders. */
  allowedRoots: string[];
  /** Node-wide bandwidth cap (MB/s), applied with the request's own cap (the lower wins). */
  nodeLimitMBps?: number;
  maxRetries: number;
  /** How often a running transfer's report is rewritten (limits.progressEveryMs; tests report faster). */
  progressEveryMs: number;
  /** A data connection on which nothing moves this long is closed, on either end (default limits.streamIdleMs). */
  idleMs?: number;
  /** Transfers sent at once (default MAX_TRANSFERS). */
  maxTransfers?: number;
  /** How long a sender waits for an offer's answer (default limits.streamOfferTimeoutMs). */
  offerTimeoutMs?: number;
  /** How long a receiver reads back before it answers with its progress (default limits.streamReadBackAnswerMs). */
  readBackAnswerMs?: number;
};

export type StreamerDeps = {
  nc: NatsConnection;
  validators: Validators;
  cfg: StreamerConfig;
  log: Logger;
  /** Signs this streamer's events; only commands signed by a coordinator run, only believed events are read. */
  trust: Trust;
  tamper?: (path: string, offset: number, data: Buffer) => void;
  /** Told of each chunk the receiving side reads back, which waits for it (tests hold a read-back here). */
  onReadBack?: (path: string, bytes: number) => Promise<void>;
  /** How the process ends when its command consumer dies (default process.exit; tests pass their own). */
  exit?: (code: number) => void;
  /** Moves a folder for a command (default: the TCP transfer; the control bench passes one that moves nothing). */
  transfer?: Transfer;
  /** Called as each command is taken off the queue (the control bench times dispatch with it). */
  onCommand?: (delivery: CommandDelivery) => void;
  /** Where to serve Prometheus metrics (HAUL_METRICS_PORT); absent: not served. */
  metrics?: MetricsConfig | undefined;
};

/**
 * Move one folder to the target node; resolves with the completion numbers. `signal` aborts it (the coordinator gave
 * it up); `report` is its progress report (the transfer makes its own without one).
 */
export type Transfer = (
  migrationId: string,
  commandId: string,
  args: StreamArgs,
  mlog: Logger,
  opts: TransferOptions,
) => Promise<StreamResult>;

/**
 * How a transfer ends on the target: `durable` synced before done (local-disk copies' frozen pass), `writeBack` the
 * files' writeback started after done (their live passes), neither for image folders.
 */
export type TransferOptions = {
  durable?: boolean;
  writeBack?: boolean;
  signal?: AbortSignal;
  report?: ProgressReporter;
};

/** One transfer as planned: what it moves, from which command, and the pass plan of a disk copy. */
type PlannedTransfer = {
  migrationId: string;
  commandId: string;
  a: StreamArgs;
  mlog: Logger;
  opts: TransferOptions & { report: ProgressReporter };
  plan: PassPlan | undefined;
  manifest: ManifestEntry[];
  total: number;
  /**
   * The files of a first disk pass this run of its command sent from their first byte: all the target holds of the
   * copy that it may trust when the connection is made again (writtenFrom0 in sendOver).
   */
  writtenFrom0: Set<string>;
};

/**
 * How a command's transfer ends on the target. A local disk copy is the CT's data: synced before it counts. Image
 * folders are only read by a restore, which a target that rebooted since its preflight refuses (docs/protocol.md),
 * so they skip the sync. The live passes of a disk skip it too: their `done` would wait for as long as the disk takes
 * (the syncs run on libuv's pool, off the receiver's loop: part-file.ts syncKeepingFailure); the frozen pass syncs
 * every file of the copy. So that this sync, in the frozen window, has only the last pass's blocks to write, a live
 * pass starts the writeback of what it wrote once it is done (writeBack, write-backs.ts). Measured by the local-disk
 * e2e's figures with 1 GiB: the frozen pass took 2.0–2.1 s without it, 0.05–0.1 s with it.
 */
export function transferEndOf(cmd: StreamCommand): Pick<TransferOptions, 'durable' | 'writeBack'> {
  const disk = cmd.step === 'copyLocalDisk';
  const final = cmd.args.pass?.final ?? true;
  return { durable: disk && final, writeBack: disk && !final };
}

/**
 * The image streamer: as a source it runs streamImages / copyLocalDisk commands: open a one-time TCP listener, offer
 * the manifest on haul.stream.<target>.offer, push the bytes down the connection the target opens, verify per chunk,
 * resume after a broken connection, report progress into the progress bucket (and that it is alive while it waits
 * on purpose) and the outcome into the migration's log; stop a transfer the coordinator gave up. As a target it
 * answers offers: check the manifest, say what is already verified, connect and receive.
 */
export function createImageStreamer(deps: StreamerDeps) {
  const { nc, validators, cfg, log, trust } = deps;
  const ac = new AbortController();
  const eventLog = withReadCache(createEventLog(nc, validators, trust), {
    signal: ac.signal,
    onFollowError: (migrationId, err) =>
      log.warn({ migrationId, err }, "a migration's log is no longer kept current: offers read it again"),
  });
  let sub: Subscription | undefined;
  let loop: Promise<void> | undefined;

  const actor = { service: executorServices.streamer, node: cfg.node } as const;
  const event = eventFactory(actor);
  const queue = createCommandQueue({ nc, validators, eventLog, log, actor, executor: 'streamer', trust });
  const gate = createPriorityGate();
  const giveUps = createGiveUpWatch(nc, eventLog);
  /** One bucket for every transfer this node sends: the node-wide cap holds however many run at once. */
  const nodeRate = createRateLimiter(cfg.nodeLimitMBps);
  const slots = createSlots(cfg.maxTransfers ?? MAX_TRANSFERS);
  const running = new Map<string, Promise<void>>();
  const registry = new Registry();
  const metrics = streamerMetrics(registry);
  let metricsServer: { close(): void } | undefined;
  let dataServer: DataServer | undefined;
  let registration: Registration | undefined;
  const receiver = createReceiver({
    allowedRoots: cfg.allowedRoots,
    log,
    ...(cfg.tls ? { tls: cfg.tls } : {}),
    registry: (node) => registration?.lookup(node) ?? Promise.resolve(undefined),
    // The migration's log, judged; kept current from its first offer on, so that the final transfer's offer, in the
    // frozen window, reads only what came since.
    intended: async (offer) => {
      // A log with no intent of the transfer is read again first (readAgainUntil: a read behind the intent).
      const got = await readAgainUntil(
        async () => (await eventLog.read(offer.migrationId)).events.map((e) => e.event),
        (events) => transferIntent(events, offer.transferId) !== undefined,
        { signal: ac.signal },
      );
      if (!got) throw new Error('the streamer is stopping');
      if (got.reads > 1)
        log.warn(
          { migrationId: offer.migrationId, transferId: offer.transferId, reads: got.reads },
          "the offer's intent was not in the first read of its log (a stream leader that had not applied it yet)",
        );
      const refused = offeredIntent(got.read, offer, cfg.node);
      // Only an offer the log intends: any registered streamer may send offers naming made-up migrations.
      if (!refused) eventLog.keepCurrent(offer.migrationId);
      return refused;
    },
    ...(cfg.idleMs ? { idleMs: cfg.idleMs } : {}),
    ...(cfg.readBackAnswerMs ? { readBackAnswerMs: cfg.readBackAnswerMs } : {}),
    ...(deps.onReadBack ? { onReadBack: deps.onReadBack } : {}),
  });

  function reporter(migrationId: string, commandId: string, mlog: Logger): ProgressReporter {
    return createProgressReporter({
      migrationId,
      commandId,
      node: cfg.node,
      everyMs: cfg.progressEveryMs,
      publish: async (r) => putProgress(await openProgress(nc), r),
      remove: async () => clearProgress(await openProgress(nc), migrationId, cfg.node, commandId),
      log: mlog,
    });
  }

  function serveOffers(): void {
    sub = nc.subscribe(subjects.streamOffer(cfg.node), {
      queue: 'image-streamer',
      callback: (err, msg) => {
        // A stored message pushed here by a consumer is no offer (sentTo, @haul/bus).
        if (err || !sentTo(msg, subjects.streamOffer(cfg.node))) return;
        void answerOffer(msg.data, msg.headers).then((reply) => {
          // A streamer that stopped while it checked the offer answers nothing: the sender offers again (to the next
          // streamer of this node), where an error would fail its step.
          if (reply === undefined) return;
          if ('error' in reply) log.warn({ err: reply.error }, 'offer refused');
          msg.respond(encodeJson(reply));
        });
      },
    });
  }

  async function answerOffer(
    data: Uint8Array,
    headers: Msg['headers'],
  ): Promise<StreamOfferReply | undefined> {
    try {
      const v = validators.validate<StreamOffer>('streamOffer', decodeJson(data));
      if (!v.ok)
        return { ok: false, error: { code: v.error.code, message: v.error.message, field: v.error.field } };
      const refused = offerSignerRefusal(trust, subjects.streamOffer(cfg.node), data, headers, v.value);
      if (refused) return { ok: false, error: refused };
      const takesReadBackProgress = headers?.get(offerHeaders.takesReadBackProgress) === '1';
      return await receiver.accept(v.value, { takesReadBackProgress });
    } catch (e) {
      if (ac.signal.aborted) return undefined;
      return { ok: false, error: { code: errorCodes.streamerError, message: (e as Error).message } };
    }
  }

  /** Move one folder to the target node; returns the completion numbers. */
  async function transfer(
    migrationId: string,
    commandId: string,
    a: StreamArgs,
    mlog: Logger,
    opts: TransferOptions = {},
  ): Promise<StreamResult> {
    const report = opts.report ?? reporter(migrationId, commandId, mlog);
    const own = opts.report ? undefined : report;
    const leave = gate.enter(a.priority);
    try {
      return await move(migrationId, commandId, a, mlog, { ...opts, report });
    } finally {
      leave();
      void own?.clear();
    }
  }

  /** Before a chunk: an iteration transfer waits while a final one runs, and reports that it waits on purpose. */
  async function priorityTurn(
    priority: StreamArgs['priority'],
    report: ProgressReporter,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (!gate.blocks(priority)) return;
    const resumed = report.waiting('priority');
    try {
      await gate.turn(priority, signal);
    } finally {
      resumed();
    }
  }

  async function move(
    migrationId: string,
    commandId: string,
    a: StreamArgs,
    mlog: Logger,
    opts: TransferOptions & { report: ProgressReporter },
  ): Promise<StreamResult> {
    const { report } = opts;
    // A pass of a live disk copy asks the host's write tracker first: every extent it hands out lies within the
    // sizes the manifest then reads.
    // The host's tracker and sync may take a while on a busy host: the transfer says it waits on purpose meanwhile.
    // Its time is the pass's toolMs, apart from the transfer's durationMs (the downtime window counts both as host
    // time, and the bandwidth estimates only the transfer).
    let toolMs = 0;
    const hostWork = async <T>(fn: () => Promise<T>): Promise<T> => {
      const resumed = report.waiting('sync');
      const t = performance.now();
      try {
        return await fn();
      } finally {
        toolMs += performance.now() - t;
        resumed();
      }
    };
    const pass = a.pass;
    const plan: PassPlan | undefined = pass ? await hostWork(() => planPass({ ...a, pass })) : undefined;
    const update = plan?.kind === 'update' ? plan : undefined;
    const manifest = update ? withExtents(buildManifest(a.sourceDir), update) : buildManifest(a.sourceDir);
    const total = manifest.reduce(
      (n, e) => n + (e.kind !== 'file' ? 0 : e.extents ? spanOf(e.extents) : (e.size ?? 0)),
      0,
    );
    const t0 = performance.now();
    report.sized(total);
    const { resumed, retries } = await sendWithRetries({
      migrationId,
      commandId,
      a,
      mlog,
      opts,
      plan,
      manifest,
      total,
      writtenFrom0: new Set(),
    });
    const ms = performance.now() - t0;
    // The extents are on the target (and synced): the tracker may forget them.
    if (update) await hostWork(update.done);
    return {
      bytes: total,
      files: manifest.filter((e) => e.kind === 'file').length,
      durationMs: ms,
      mbPerSec: total / 1e6 / Math.max(ms / 1000, 1e-6),
      ...(pass ? { toolMs: Math.round(toolMs * 10) / 10 } : {}),
      resumedBytes: resumed,
      retries,
    };
  }

  /**
   * Offer the transfer and send it, again from what the target verified when the offer is not answered or the
   * connection is lost, up to the configured retries.
   */
  async function sendWithRetries(t: PlannedTransfer): Promise<{ resumed: number; retries: number }> {
    const { mlog } = t;
    const { signal } = t.opts;
    const pace = pacing(t);
    const tries = { retries: 0 };
    let resumed = 0;
    for (;;) {
      const { listener, reply } = await offerUntilAnswered(t, tries);
      t.opts.report.restart();
      try {
        const s = await sendOver(t, listener, reply, pace);
        resumed += s.resumedBytes;
        return { resumed, retries: tries.retries + s.resent };
      } catch (err) {
        signal?.throwIfAborted();
        if (!(err instanceof ConnectionLost) || ++tries.retries > cfg.maxRetries) throw err;
        mlog.warn(
          { err: err.message, retries: tries.retries },
          'connection lost; resuming from what the target verified',
        );
        await delay(Math.min(2000, 200 * tries.retries), undefined, { signal });
      } finally {
        listener.close();
        pace.endSync();
      }
    }
  }

  /**
   * Offer the transfer until its receiver takes it: again after no answer (one of the retries, after a pause), and at
   * once after an answer with a read-back's progress (no retry: the transfer waits on purpose while that grows). A
   * refusal throws, its code kept.
   */
  async function offerUntilAnswered(
    t: PlannedTransfer,
    tries: { retries: number },
  ): Promise<{ listener: DataListener; reply: StreamOfferAccepted }> {
    const { a, mlog } = t;
    const { report, signal } = t.opts;
    const readBack = readBackWait(report);
    try {
      for (;;) {
        if (!dataServer) throw new Error('the image streamer is not started');
        const listener = dataServer.expect(a.toNode);
        let reply: StreamOfferReply;
        try {
          reply = await offerTransfer(t, dataServer.port, listener.token);
        } catch (err) {
          listener.close();
          readBack.end();
          signal?.throwIfAborted();
          if (++tries.retries > cfg.maxRetries)
            throw new Error(`no streamer answers for ${a.toNode}: ${(err as Error).message}`);
          mlog.warn({ err, retries: tries.retries }, 'offer not answered; trying again');
          await delay(Math.min(2000, 200 * tries.retries), undefined, { signal });
          continue;
        }
        if (reply.ok) return { listener, reply };
        listener.close();
        if ('error' in reply) throw Object.assign(new Error(reply.error.message), { info: reply.error });
        // The receiver answers again once it has read on (limits.streamReadBackAnswerMs): offered again at once.
        readBack.answered(reply.readingBack);
        signal?.throwIfAborted();
      }
    } finally {
      readBack.end();
    }
  }

  /** A transfer's throttle (its priority, its own rate, the node's) and its byte count, which opens the final sync. */
  function pacing(t: PlannedTransfer): Pick<SendOptions, 'throttle' | 'onBytes'> & { endSync: () => void } {
    const { report, signal } = t.opts;
    const rate = createRateLimiter(t.a.bandwidthLimitMBps);
    let endSync: (() => void) | undefined;
    return {
      throttle: async (bytes: number) => {
        await priorityTurn(t.a.priority, report, signal);
        await rate(bytes);
        await nodeRate(bytes);
        signal?.throwIfAborted();
      },
      onBytes: (n: number) => {
        metrics.sent(n);
        report.moved(n);
        // Every byte is with the receiver: it verifies (and for a disk copy syncs) them before its `done`, moving none.
        if (report.bytesDone >= t.total) endSync ??= report.waiting('sync');
      },
      endSync: () => {
        endSync?.();
        endSync = undefined;
      },
    };
  }

  /** Ask the target's streamer to take the transfer; its reply says what of each file it already verified. */
  async function offerTransfer(t: PlannedTransfer, port: number, token: string): Promise<StreamOfferReply> {
    const { a, opts, plan } = t;
    const offer: StreamOffer = {
      transferId: transferIdOf(t.commandId),
      migrationId: t.migrationId,
      fromNode: cfg.node,
      targetDir: a.targetDir,
      connect: { host: cfg.advertiseHost ?? cfg.listenHost, port, token },
      manifest: t.manifest,
      ...(opts.durable ? { durable: true } : {}),
      ...(opts.writeBack ? { writeBack: true } : {}),
      ...(plan?.kind === 'update' ? { update: true } : {}),
    };
    const subject = subjects.streamOffer(a.toNode);
    const body = encodeJson(offer);
    // Signed as this node's streamer: the receiver takes an offer only from the node it names (offer-signer.ts).
    const m = await abortable(
      signedRequest(
        nc,
        subject,
        body,
        trust.sign(subject, body),
        cfg.offerTimeoutMs ?? limits.streamOfferTimeoutMs,
        {
          [offerHeaders.takesReadBackProgress]: '1',
        },
      ),
      opts.signal,
    );
    return decodeJson(m.data) as StreamOfferReply;
  }

  /** What the target verified of the files in `written`; nothing of the others. */
  const writtenBy = <V>(written: ReadonlySet<string>, verified: Record<string, V>): Record<string, V> =>
    Object.fromEntries(Object.entries(verified).filter(([path]) => written.has(path)));

  /** The target connects back; the files go over that connection from where the target's verified bytes end. */
  async function sendOver(
    t: PlannedTransfer,
    listener: DataListener,
    reply: StreamOfferAccepted,
    pace: Pick<SendOptions, 'throttle' | 'onBytes'>,
  ): Promise<SendStats> {
    const { verified } = reply;
    const { signal } = t.opts;
    const update = t.plan?.kind === 'update';
    const sock = await abortableTaking(listener.accept(limits.streamConnectMs), signal);
    const tamper = deps.tamper;
    // Given up: the connection is cut, so the transfer stops within a chunk.
    const cut = () => sock.destroy();
    signal?.addEventListener('abort', cut, { once: true });
    // A first disk pass trusts of the target's copy only what this run of it sent, from each file's first byte: a file
    // there from before (an earlier run of the command, an older migration's copy, one left over) may be older than
    // the tracker's start, and its size alone made it look finished, so it was never sent. A connection made again
    // within the run resumes. An update pass has nothing to resume: it is sent again whole.
    const trusted = t.plan?.kind === 'full' ? writtenBy(t.writtenFrom0, verified) : verified;
    return sendFiles({
      sourceDir: t.a.sourceDir,
      manifest: t.manifest,
      sock,
      ...(t.plan?.kind === 'full' ? { onFileStart: (path: string) => t.writtenFrom0.add(path) } : {}),
      verified: update ? {} : trusted,
      ...(reply.finishesVerified ? { finishesVerified: true } : {}),
      ...(update ? { pieces: piecesOf } : {}),
      throttle: pace.throttle,
      onBytes: pace.onBytes,
      ...(tamper ? { tamper } : {}),
      ...(cfg.idleMs ? { idleMs: cfg.idleMs } : {}),
    }).finally(() => signal?.removeEventListener('abort', cut));
  }

  /**
   * Take a command off the queue and run it in the background, also while it waits for a transfer slot: it reports
   * that it waits (a wait for a slot is no stall), and the queue goes on, so a final-dump transfer is not queued
   * behind a long pre-dump transfer of another migration.
   */
  function dispatch(d: CommandDelivery): Promise<void> {
    deps.onCommand?.(d);
    const id = d.command.commandId;
    if (running.has(id)) {
      log.debug({ commandId: id }, 'redelivered while still running: the running transfer acks it');
      return Promise.resolve();
    }
    // Runs in the background: a failure is handed back to the queue (redelivered, or parked), never lost.
    const task = handle(d)
      .catch((err: unknown) => queue.handlerFailed(d, err))
      .finally(() => running.delete(id));
    running.set(id, task);
    return Promise.resolve();
  }

  async function handle(d: CommandDelivery): Promise<void> {
    const { command: cmd, msg } = d;
    const mlog = migrationLogger(log, cmd.migrationId, { step: cmd.step, commandId: cmd.commandId });
    const wrong = misaddressed(cmd, { node: cfg.node, executor: 'streamer' }, isStreamCommand(cmd));
    if (wrong || !isStreamCommand(cmd)) {
      await queue.refuse(msg, wrong!, cmd); // misaddressed refuses a step that does not stream
      return;
    }
    // In hand, the command must not be redelivered: also while it waits for a slot.
    const working = setInterval(() => msg.working(), 2000);
    const report = reporter(cmd.migrationId, cmd.commandId, mlog);
    try {
      // The queue's read of the log stands for the log only when no wait for a slot came after it.
      const waited = slots.full;
      const release = await inSlot(report);
      if (!release) return msg.nak(); // the streamer stops: the next one takes it
      try {
        await run(waited ? { command: d.command, msg } : d, cmd, mlog, report);
      } finally {
        release();
      }
    } finally {
      clearInterval(working);
      report.stop();
    }
  }

  /**
   * A transfer slot; while none is free the command reports that it waits for one. Undefined when the streamer
   * stops first (the commands in hand that have no slot yet are given back to the queue).
   */
  async function inSlot(report: ProgressReporter): Promise<(() => void) | undefined> {
    if (ac.signal.aborted) return undefined;
    if (!slots.full) return slots.acquire();
    const got = report.waiting('slot');
    try {
      return await slots.acquire(ac.signal);
    } catch (err) {
      if (ac.signal.aborted) return undefined;
      throw err;
    } finally {
      got();
    }
  }

  /**
   * Run the transfer unless its outcome is in the log already, and record its outcome — or stop it as soon as the
   * coordinator gives it up (timed out, stalled): the log then has the coordinator's outcome, and nothing more is
   * recorded. The progress report goes once the log says how the transfer ended.
   *
   * The log is the one the queue read to check the command's intent, just before, when the command found a slot free;
   * it is read here when signatures are off or the command waited for a slot (the coordinator may have given it up or
   * ended the migration meanwhile: a transfer started then would offer the target an attempt that ended, and the
   * target stops a newer attempt's reception for it).
   */
  async function run(
    d: CommandDelivery,
    cmd: StreamCommand,
    mlog: Logger,
    report: ProgressReporter,
  ): Promise<void> {
    const { msg } = d;
    const { events, lastSeq } =
      d.log && d.logSeq !== undefined
        ? { events: d.log, lastSeq: d.logSeq }
        : await eventLog
            .read(cmd.migrationId)
            .then((r) => ({ events: r.events.map((e) => e.event), lastSeq: r.lastSeq }));
    const fate = commandFate(events, cmd.commandId);
    if (fate !== 'open') {
      // Ended without it while it waited for a slot (an operator's resolve, a cleanup): nothing left to transfer.
      if (fate === 'ended') mlog.warn('its migration ended while it waited: not transferred');
      msg.ack();
      return report.clear();
    }
    const givenUp = giveUps.watch(cmd.migrationId, cmd.commandId, lastSeq, mlog);
    let outcome: MigrationEvent | undefined;
    try {
      outcome = await attempt(cmd, mlog, report, givenUp.signal);
    } finally {
      givenUp.stop();
    }
    report.stop();
    if (!outcome) mlog.warn({ reason: String(givenUp.signal.reason) }, 'transfer stopped: it was given up');
    else {
      try {
        await eventLog.append(outcome);
      } catch (err) {
        mlog.error({ err }, 'cannot record the outcome; the command will be redelivered and resume');
        msg.nak(1000);
        return;
      }
    }
    msg.ack();
    await report.clear();
  }

  /** The transfer's outcome event, or undefined when it was given up (`signal`) before it ended. */
  async function attempt(
    cmd: StreamCommand,
    mlog: Logger,
    report: ProgressReporter,
    signal: AbortSignal,
  ): Promise<MigrationEvent | undefined> {
    const base = { commandId: cmd.commandId, step: cmd.step, node: cfg.node, attempt: cmd.attempt };
    metrics.started();
    try {
      const result = await (deps.transfer ?? transfer)(cmd.migrationId, cmd.commandId, cmd.args, mlog, {
        ...transferEndOf(cmd),
        signal,
        report,
      });
      mlog.info({ bytes: result.bytes, mbPerSec: Math.round(result.mbPerSec) }, 'images streamed');
      metrics.ended(cmd.step, result);
      return event(cmd.migrationId, 'StepSucceeded', { ...base, result }, `${cmd.commandId}:result`);
    } catch (err) {
      metrics.ended(cmd.step, undefined);
      if (signal.aborted) return undefined;
      const info = (err as { info?: ErrorInfo }).info;
      const error: ErrorInfo = info ?? { code: errorCodes.streamFailed, message: (err as Error).message };
      mlog.error({ err: error }, 'streaming failed');
      return event(cmd.migrationId, 'StepFailed', { ...base, error }, `${cmd.commandId}:result`);
    }
  }

  return {
    transfer,
    /** The commands in hand: transferring, or waiting for a slot. */
    get commandsInHand(): string[] {
      return [...running.keys()];
    },
    async start(): Promise<void> {
      dataServer = await createDataServer({
        host: cfg.listenHost,
        ...(cfg.dataPorts ? { ports: cfg.dataPorts } : {}),
        log,
        ...(cfg.tls ? { tls: cfg.tls } : {}),
      });
      registration = await registerStreamer(nc, validators, log, {
        node: cfg.node,
        dataHost: cfg.advertiseHost ?? cfg.listenHost,
        dataPort: dataServer.port,
        tls: cfg.tls !== undefined,
      });
      serveOffers();
      serveDiscovery(
        nc,
        'image-streamer',
        cfg.node,
        () => ({ parkedCommands: queue.parked, commandsInHand: running.size }),
        trust,
      );
      // A deaf streamer must not stay up: it exits so that its supervisor restarts it.
      const consumer = await queue.consume(dispatch, ac.signal);
      loop = exitWhenLoopEnds(log, 'command consumer', consumer.ended, ac.signal, deps.exit);
      metricsServer = await exposeMetrics({
        registry,
        cfg: deps.metrics,
        log,
        nc,
        stream: streams.commands,
        consumer: commandConsumerName(cfg.node, 'streamer'),
      });
      if (crc32Loaded.impl === 'zlib')
        log.warn(
          { why: crc32Loaded.why },
          "@node-rs/crc32 did not load: chunks are checked with zlib's CRC-32",
        );
      log.info({ dataPort: dataServer.port, crc32: crc32Loaded.impl }, 'image streamer started');
    },
    async stop(): Promise<void> {
      ac.abort();
      metricsServer?.close();
      sub?.unsubscribe();
      await loop;
      await Promise.all(running.values());
      registration?.stop();
      await dataServer?.close();
    },
    /** Sockets open on the data listener (tests count them). */
    dataSockets: () => dataServer?.openSockets() ?? 0,
    /** Transfers being received (tests count them). */
    receiving: () => receiver.active(),
  };
}

export type ImageStreamer = ReturnType<typeof createImageStreamer>;

type Extents = NonNullable<ManifestEntry['extents']>;
const spanOf = (extents: Extents): number => extents.reduce((n, [s, e]) => n + e - s, 0);
const piecesOf = (e: ManifestEntry): [number, number][] =>
  (e.extents ?? []).map(([s, end]): [number, number] => [s, end]);

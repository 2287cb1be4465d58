import { closeSync, lstatSync, mkdirSync, openSync, rmdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, type OnReadOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { errorCodes } from '@haul/domain';
import { dirname, join, relative } from 'node:path';
import { commandFate, createSerialByKey, limits, type Logger } from '@haul/bus';
import type {
  ErrorInfo,
  MigrationEvent,
  StepCommand,
  StreamerRegistration,
  StreamOffer,
  StreamOfferReply,
} from '@haul/schemas';
import { checkManifest, UnsafeManifestError, type ManifestEntry } from './manifest.ts';
import { FrameReader, type ChunkFrame } from './frame-reader.ts';
import { createEmptyFile, mkdirsNoFollow, noFollow, regularFileSize } from './confine.ts';
import {
  dropLeftovers,
  isFinished,
  keepWriteBackFailure,
  PartFile,
  syncKeepingFailure,
  syncOnPool,
  verifiedPrefix,
  writeBackFailure,
} from './part-file.ts';
import { isStreamCommand } from './stream-command.ts';
import { UpdateFile } from './update-file.ts';
import { clientContextOf, namesStreamer, streamerIdentity, type TlsMaterial } from './tls.ts';
import { CHUNK, chunkDigest, isCount } from './wire.ts';
import { createWriteBacks, type WriteBacks } from './write-backs.ts';

/**
 * Bytes already here and verified per file (finished files count fully): the resume point the offer reply carries.
 * `onRead` is told of each chunk of a part file read back.
 */
export async function verifiedBytes(
  offer: StreamOffer,
  onRead?: (path: string, bytes: number) => void | Promise<void>,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const e of offer.manifest) {
    if (e.kind !== 'file') continue;
    const path = join(offer.targetDir, e.path);
    out[e.path] = await verifiedPrefix(path, e.size ?? 0, onRead && ((bytes) => onRead(path, bytes)));
  }
  return out;
}

/**
 * A read-back of an offer's part files under way (what of them is verified): whose offer started it, how far it
 * read, and what it will answer. It goes on after an offer was answered with its progress, and the offers of the same
 * transfer sent again take its answer instead of reading beside it.
 */
type ReadBack = {
  from: string;
  migrationId: string;
  /** The offer's manifest (JSON): an offer with another one waits for this read-back, then reads its own. */
  manifest: string;
  bytesRead: number;
  bytesTotal: number;
  verified: Promise<Record<string, number>>;
};
type ReadBackAnswer = { verified: Record<string, number> } | { reading: ReadBack };

/** The data address a node's streamer registered (bucket haul-streamers), or undefined when it has none. */
export type PeerRegistry = (node: string) => Promise<StreamerRegistration | undefined>;

/**
 * Is the offer a transfer the coordinator intended (offeredIntent over its migration's judged log)? A refusal when not.
 * Every streamer may send offers to every other, so without it a streamer could write into any folder below another
 * node's roots: another migration's images, which that node restores as root, or any CT's private area.
 */
export type IntentCheck = (offer: StreamOffer) => Promise<Refusal | undefined>;

export type ReceiverOptions = {
  allowedRoots: string[];
  log: Logger;
  registry: PeerRegistry;
  /** Is the offer intended (offeredIntent over the judged log, app.ts; tests of the data plane alone allow all). */
  intended: IntentCheck;
  /** Mutual TLS on the data connection; absent: plaintext (HAUL_INSECURE=1). */
  tls?: TlsMaterial;
  idleMs?: number;
  perPeer?: number;
  /** An offer whose sender takes a read-back's progress gets it after this long (default limits.streamReadBackAnswerMs). */
  readBackAnswerMs?: number;
  /** Told of each chunk read back, which waits for it (tests hold a read-back here, as `tamper` corrupts a chunk). */
  onReadBack?: (path: string, bytes: number) => Promise<void>;
  /** How a finished file's background writeback syncs it (default: fdatasync; tests hold one here). */
  syncInBackground?: (path: string) => Promise<void>;
};

/** How the offer was sent: its sender takes a read-back's progress as an answer (offerHeaders.takesReadBackProgress). */
export type OfferOptions = { takesReadBackProgress?: boolean };

export type Refusal = { ok: false; error: ErrorInfo };
const refuse = (code: string, field: string, message: string): Refusal => ({
  ok: false,
  error: { code, message, field },
});

/**
 * The receiving side. An offer is answered with how much of each file is already verified, after its sender, its
 * data address and its manifest passed their checks; then the receiver connects to the sender's registered data
 * address and receives. Nothing is created, and no connection opened, for a refused offer.
 */
export function createReceiver(opts: ReceiverOptions) {
  const perPeer = opts.perPeer ?? limits.streamConnectionsPerPeer;
  const active = new Map<string, number>();
  /** The reception writing into each target folder, until its connection has closed and its finish has ended. */
  const receiving = new Map<string, Reception>();
  const writeBacks = createWriteBacks(opts.syncInBackground ?? syncInBackground, (path, err) =>
    keepFailure(path, err, opts.log),
  );
  const ctx = (from: string): ReceiveContext => ({
    log: opts.log,
    writeBacks,
    idleMs: opts.idleMs ?? limits.streamIdleMs,
    ...(opts.tls ? { tls: opts.tls } : {}),
    onClosed: () => active.set(from, (active.get(from) ?? 1) - 1),
  });
  /**
   * A reception still writing into the offer's folder is an earlier attempt of the same migration's transfer from the
   * same node, whose sender gave up on it while its frames were still being written here (a busy receiver lags
   * behind its socket): it is ended, and its slot freed, before the new attempt's resume point is read from the part
   * files. Else its last writes and renames would race the new attempt (a part file renamed in between is not there
   * to resume: ENOENT). A reception of anything else into the folder refuses the offer. Undefined when the folder is
   * free.
   */
  async function endEarlierAttempt(offer: StreamOffer): Promise<Refusal | undefined> {
    const rb = readBacks.get(offer.targetDir);
    if (rb && (rb.from !== offer.fromNode || rb.migrationId !== offer.migrationId))
      return refuse(
        errorCodes.streamerBusy,
        'targetDir',
        `${offer.targetDir} is being read back for ${rb.migrationId} from ${rb.from}`,
      );
    for (let r = receiving.get(offer.targetDir); r; r = receiving.get(offer.targetDir)) {
      if (r.from !== offer.fromNode || r.migrationId !== offer.migrationId)
        return refuse(
          errorCodes.streamerBusy,
          'targetDir',
          `${offer.targetDir} is being received from ${r.from} for ${r.migrationId}`,
        );
      await r.stop();
    }
    return undefined;
  }

  const folders = createSerialByKey();
  /** The read-back under way in each target folder. */
  const readBacks = new Map<string, ReadBack>();

  /** Read-backs under way per peer: an offer answered with its progress frees its slot, the read goes on. */
  const readingFrom = new Map<string, number>();

  /**
   * A read-back counts against its peer's read-backs (at most perPeer at once, apart from the slots of its
   * receptions): offers into many folders cannot keep more read-backs going than that.
   */
  function startReadBack(offer: StreamOffer, manifest: string): ReadBack {
    readingFrom.set(offer.fromNode, (readingFrom.get(offer.fromNode) ?? 0) + 1);
    const release = () => readingFrom.set(offer.fromNode, (readingFrom.get(offer.fromNode) ?? 1) - 1);
    const rb: ReadBack = {
      from: offer.fromNode,
      migrationId: offer.migrationId,
      manifest,
      bytesRead: 0,
      bytesTotal: offer.manifest.reduce((n, e) => n + (e.kind === 'file' ? (e.size ?? 0) : 0), 0),
      verified: verifiedBytes(offer, async (path, bytes) => {
        await opts.onReadBack?.(path, bytes);
        rb.bytesRead += bytes;
      }),
    };
    readBacks.set(offer.targetDir, rb);
    // Its offer may have been answered with its progress, and no offer come again: a failure is the next offer's.
    void rb.verified
      .catch(() => {})
      .finally(() => {
        release();
        if (readBacks.get(offer.targetDir) === rb) readBacks.delete(offer.targetDir);
      });
    return rb;
  }

  /**
   * What of the offer's files is verified, read back once however often the transfer is offered; or, for a sender
   * that takes it, the read-back under way in the folder when it has not ended within readBackAnswerMs.
   */
  async function readBackFor(offer: StreamOffer, o: OfferOptions): Promise<ReadBackAnswer> {
    const manifest = JSON.stringify(offer.manifest);
    let rb = readBacks.get(offer.targetDir);
    if (rb && (offer.update || rb.manifest !== manifest)) {
      // Another read of the folder (of another manifest of this transfer) ends first.
      const earlier = await answerWithin(rb, o);
      if ('reading' in earlier) return earlier;
      rb = undefined;
    }
    // An update pass resumes nothing: it is sent whole again.
    if (offer.update) return { verified: {} };
    return answerWithin(rb ?? startReadBack(offer, manifest), o);
  }

  /** The read-back's answer, or itself still under way after readBackAnswerMs for a sender that takes that. */
  async function answerWithin(reading: ReadBack, o: OfferOptions): Promise<ReadBackAnswer> {
    const verified = reading.verified.then((v) => ({ verified: v }));
    if (!o.takesReadBackProgress) return verified;
    let timer: NodeJS.Timeout | undefined;
    const later = new Promise<{ reading: ReadBack }>((resolve) => {
      timer = setTimeout(() => resolve({ reading }), opts.readBackAnswerMs ?? limits.streamReadBackAnswerMs);
    });
    try {
      return await Promise.race([verified, later]);
    } finally {
      clearTimeout(timer);
    }
  }

  async function acceptInto(
    offer: StreamOffer,
    received: StreamOffer,
    root: string,
    o: OfferOptions,
  ): Promise<StreamOfferReply> {
    const earlier = await endEarlierAttempt(offer);
    if (earlier) return earlier;
    // Counted from the answer to the data connection's close: held connections cannot pile up.
    if ((active.get(offer.fromNode) ?? 0) >= perPeer)
      return refuse(
        errorCodes.streamerBusy,
        'fromNode',
        `${offer.fromNode} already has ${perPeer} transfers running into this streamer`,
      );
    // A new read-back, beside as many of that node's as it may have (one under way in the folder is joined).
    if (!offer.update && !readBacks.has(offer.targetDir) && (readingFrom.get(offer.fromNode) ?? 0) >= perPeer)
      return refuse(
        errorCodes.streamerBusy,
        'fromNode',
        `${offer.fromNode} already has ${perPeer} read-backs running in this streamer`,
      );
    const release = ctx(offer.fromNode).onClosed;
    active.set(offer.fromNode, (active.get(offer.fromNode) ?? 0) + 1);
    let read: ReadBackAnswer;
    try {
      const late = await makeFolders(offer, received, root);
      if (late) {
        release();
        return late;
      }
      read = await readBackFor(offer, o);
    } catch (err) {
      release();
      throw err;
    }
    if ('reading' in read) {
      release();
      const { bytesRead, bytesTotal } = read.reading;
      return { ok: false, readingBack: { bytesRead, bytesTotal } };
    }
    receive(offer, read.verified);
    return { ok: true, verified: read.verified, finishesVerified: true };
  }

  /**
   * Make the offer's target folder and the manifest's folders. The offer was checked against the log before (intended),
   * and the transfer may have been given up since, its removal run: then a target folder made here would be left
   * behind, and nothing would remove it again. So once this made the target folder, the offer is checked again, as it
   * was received (`received`: its target folder as the log names it, not the real path it was confined to), and a
   * refusal now, or a failure on the way, removes the (empty) target folder and the folders made in it. Folders made
   * above it are left: another offer may be making its own folder in them. A target folder that was there already is
   * the removal's to take: made before the give-up, it is removed after it, and a reception into it then fails (its
   * folder is gone).
   */
  async function makeFolders(
    offer: StreamOffer,
    received: StreamOffer,
    root: string,
  ): Promise<Refusal | undefined> {
    mkdirSync(root, { recursive: true });
    // A folder made on the way to the target folder means the target folder was made too (it is the last one).
    const chain = mkdirsNoFollow(root, relative(root, offer.targetDir));
    if (chain.length === 0) {
      for (const e of offer.manifest) if (e.kind === 'dir') mkdirsNoFollow(offer.targetDir, e.path);
      return undefined;
    }
    const made = [offer.targetDir];
    try {
      for (const e of offer.manifest)
        if (e.kind === 'dir') made.push(...mkdirsNoFollow(offer.targetDir, e.path));
      const late = await opts.intended(received);
      if (late) removeMade(made);
      return late;
    } catch (err) {
      removeMade(made);
      throw err;
    }
  }

  /** Remove folders this offer made (empty ones: rmdir), the innermost first. */
  function removeMade(made: string[]): void {
    for (const dir of [...made].reverse()) {
      try {
        rmdirSync(dir);
      } catch (err) {
        opts.log.warn({ dir, err }, 'cannot remove a folder this offer made');
      }
    }
  }

  /** Connect to the sender and receive: the slot counted for the offer is released when the connection closes. */
  function receive(offer: StreamOffer, verified: Record<string, number>): void {
    const c = ctx(offer.fromNode);
    try {
      const r = new Reception(offer, verified, c);
      receiving.set(offer.targetDir, r);
      void r.closed.then(() => {
        if (receiving.get(offer.targetDir) === r) receiving.delete(offer.targetDir);
      });
    } catch (err) {
      // No socket came to be, so no close will release the slot: release it here.
      opts.log.warn({ transferId: offer.transferId, err }, 'cannot open the data connection');
      c.onClosed();
    }
  }

  return {
    async accept(received: StreamOffer, o: OfferOptions = {}): Promise<StreamOfferReply> {
      const peer = await checkPeer(received, opts);
      if (peer) return peer;
      const unintended = await opts.intended(received);
      if (unintended) return unintended;
      let confined: { root: string; dir: string };
      try {
        confined = checkManifest(received.manifest, received.targetDir, opts.allowedRoots);
      } catch (err) {
        if (err instanceof UnsafeManifestError)
          return refuse(errorCodes.unsafeManifest, err.field, err.message);
        throw err;
      }
      // From here on every path is built on the physical folder the checks walked (the root's real path).
      const offer = { ...received, targetDir: confined.dir };
      // One offer into a folder at a time, from the end of the earlier attempt to the start of this one's reception:
      // an offer sent again while the first's part files are read back waits, and is then answered from what that
      // read found (verifiedPrefix), instead of reading beside it and receiving beside it.
      // A sender that takes a read-back's progress is answered with it meanwhile, and the read goes on.
      return folders.run(offer.targetDir, () => acceptInto(offer, received, confined.root, o));
    },
    /** Data connections open or about to open (for tests and status). */
    active: () => [...active.values()].reduce((a, b) => a + b, 0),
  };
}

export type Receiver = ReturnType<typeof createReceiver>;

/**
 * The offer's sender must be a node whose streamer registered (recently) the very data address the offer names,
 * with the same kind of connection (TLS or not) as this streamer: an offer cannot send the receiver anywhere else.
 */
async function checkPeer(offer: StreamOffer, opts: ReceiverOptions): Promise<Refusal | undefined> {
  const code = errorCodes.unregisteredPeer;
  const reg = await opts.registry(offer.fromNode);
  if (!reg) return refuse(code, 'fromNode', `${offer.fromNode} has no image streamer registered`);
  const age = Date.now() - Date.parse(reg.time);
  if (!(age <= limits.streamerRegistrationMaxAgeMs))
    return refuse(code, 'fromNode', `the streamer registration of ${offer.fromNode} is ${age} ms old`);
  if (reg.dataHost !== offer.connect.host)
    return refuse(
      code,
      'connect.host',
      `${offer.fromNode} registered ${reg.dataHost}, not ${offer.connect.host}`,
    );
  if (reg.dataPort !== offer.connect.port)
    return refuse(
      code,
      'connect.port',
      `${offer.fromNode} registered port ${reg.dataPort}, not ${offer.connect.port}`,
    );
  if (reg.tls !== Boolean(opts.tls))
    return refuse(
      code,
      'fromNode',
      `${offer.fromNode} ${reg.tls ? 'uses' : 'does not use'} TLS; this streamer ${opts.tls ? 'does' : 'does not'}`,
    );
  return undefined;
}

/** Create a manifest's link, replacing a link (never anything else) already at its path. */
function placeLink(dir: string, e: ManifestEntry): void {
  mkdirsNoFollow(dir, dirname(e.path));
  const p = join(dir, e.path);
  let isLink = false;
  try {
    isLink = lstatSync(p).isSymbolicLink();
  } catch {
    isLink = false;
  }
  if (isLink) unlinkSync(p);
  symlinkSync(e.linkTarget!, p);
}

/** fdatasync a file written by an earlier pass, so its data survives a crash of the machine (a failure kept). */
async function syncFile(path: string): Promise<void> {
  const fd = openSync(path, noFollow.read);
  try {
    await syncKeepingFailure(fd, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Write a finished file's data to disk in the background (offer.writeBack, write-backs.ts): fdatasync on a descriptor
 * of its own, on libuv's thread pool, so neither this receiver's loop nor any file it holds waits for it. A failure
 * is kept beside the file (writeBackFailedPathOf) and in this process (keepFailure): the kernel reports it once and
 * marks the pages clean, so the frozen pass's sync, on a descriptor opened after, would return 0 over data that never
 * reached the disk. Every later pass over the file fails on it instead (writeBackFailure), and the migration rolls
 * back.
 */
async function syncInBackground(path: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, noFollow.read);
  } catch (err) {
    // Gone since (its migration rolled back and removed the copy): nothing of it to write back.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await fh.datasync();
  } finally {
    // A close that fails (an NFS server's late write error) fails the writeback too.
    await fh.close();
  }
}

/** Why a pass fails on a file of the copy whose data failed to reach the disk, or undefined (part-file.ts). */
function lostWriteBack(targetDir: string, path: string): string | undefined {
  const why = writeBackFailure(join(targetDir, path));
  return why && `${path}: a sync of its data failed (${why}): its data may not be on disk`;
}

function keepFailure(path: string, err: Error, log: Logger): void {
  if (!keepWriteBackFailure(path, `background writeback: ${err.message}`))
    log.error({ path }, 'could not keep a failed writeback beside its file: only this process knows of it');
  log.error({ path, err: err.message }, 'background writeback failed: every later pass over this file fails');
}

/** fsync a folder, so the renames in it survive a crash of the machine (on libuv's pool, as a file's sync). */
async function syncDir(dir: string): Promise<void> {
  const fd = openSync(dir, noFollow.read);
  try {
    await syncOnPool(fd, 'all');
  } finally {
    closeSync(fd);
  }
}

/** Chunk payloads handed out and not yet written (writes are synchronous, so this is only a guard). */
const MAX_IN_FLIGHT = 4;

type ReceiveContext = {
  log: Logger;
  idleMs: number;
  tls?: TlsMaterial;
  onClosed: () => void;
  writeBacks: WriteBacks;
};

/**
 * One transfer being received over its data connection: a part file per file of a full pass (part-file.ts: only a
 * verified prefix is ever kept), an update file per file an update pass writes to. A chunk outside the manifest, a
 * file that cannot be written or finished, fails the transfer: the sender is told why and the connection ends, and
 * what was verified stays for the next offer to resume. A chunk whose digest differs is only asked for again.
 */
class Reception {
  private readonly files = new Map<string, PartFile>();
  private readonly updates = new Map<string, UpdateFile>();
  private readonly byPath: Map<string, ManifestEntry & { size: number }>;
  private failed = false;
  /** The finish under way after the sender's end (its syncs): the folder stays this reception's until it settles. */
  private finishing: Promise<void> = Promise.resolve();
  private readonly reader: FrameReader;
  private readonly sock: Socket;
  /** Settles once the connection has closed: nothing of this reception writes after it. */
  readonly closed: Promise<void>;
  private markClosed!: () => void;

  private readonly offer: StreamOffer;
  private readonly verified: Record<string, number>;
  private readonly ctx: ReceiveContext;

  /** The sending node and the migration of the transfer. */
  get from(): string {
    return this.offer.fromNode;
  }
  get migrationId(): string {
    return this.offer.migrationId;
  }

  constructor(offer: StreamOffer, verified: Record<string, number>, ctx: ReceiveContext) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.offer = offer;
    this.verified = verified;
    this.ctx = ctx;
    this.byPath = new Map(
      offer.manifest
        .filter((e) => e.kind === 'file')
        .map((e) => [e.path, e as ManifestEntry & { size: number }]),
    );
    this.reader = new FrameReader(
      MAX_IN_FLIGHT,
      { chunk: (f) => this.chunk(f), end: () => this.end(), error: (why) => this.fail(why) },
      () => this.sock.resume(),
    );
    this.sock = dial(offer, this.reader, ctx.tls);
    this.watch();
  }

  private reply(line: string): void {
    this.sock.write(`${line}\n`);
  }

  /** End the connection now, whatever it was doing; settles once it has closed. */
  stop(): Promise<void> {
    this.reader.stop();
    this.sock.destroy();
    return this.closed;
  }

  private fail(why: string): void {
    if (this.failed) return;
    this.failed = true;
    this.reader.stop();
    this.ctx.log.warn({ transferId: this.offer.transferId, why }, 'transfer refused');
    this.reply(`error ${why}`);
    this.sock.end();
  }

  /** The connection's life: the token first, an idle peer dropped, every file closed at the end. */
  private watch(): void {
    const { sock, offer, ctx } = this;
    sock.setNoDelay(true);
    sock.once(ctx.tls ? 'secureConnect' : 'connect', () => this.reply(offer.connect.token));
    // A peer that stops sending (or never starts) is dropped: its socket and frame buffers are not held forever.
    sock.setTimeout(ctx.idleMs, () => {
      ctx.log.warn({ transferId: offer.transferId, idleMs: ctx.idleMs }, 'data connection idle; closing it');
      sock.destroy();
    });
    sock.on('error', (err) =>
      ctx.log.warn({ transferId: offer.transferId, err: err.message }, 'data connection lost'),
    );
    sock.once('close', () => {
      this.reader.stop();
      // A finish under way keeps its files, its slot and the folder until it has ended: an offer of the transfer
      // again waits for it (stop, closed) instead of reading part files it is renaming.
      void this.finishing.then(() => {
        // Every file closed, and the slot and the folder let go, whatever a close reports (NFS reports a delayed
        // write error there): a close that threw here ended the streamer, and left the slot and the folder taken.
        for (const f of [...this.files.values(), ...this.updates.values()]) {
          try {
            f.close();
          } catch (err) {
            ctx.log.warn({ transferId: offer.transferId, err }, 'closing a received file failed');
          }
        }
        this.files.clear();
        this.updates.clear();
        ctx.onClosed();
        this.markClosed();
      });
    });
  }

  /**
   * The file a full pass's chunk at `offset` goes to, opened at its first chunk. The sender sends each file from what
   * it trusts of this side's: from the end of the verified prefix the offer's answer told it (no chunk of which it
   * sends again), or from the start (a first pass of a disk copy trusts only the files its run sent: what is here
   * from before may be older than its tracker). A first chunk at 0 with something verified is the latter, and the
   * file starts over: a part file kept, or one finished (which has no part file to resume), would take chunks it does
   * not hold.
   */
  private partFile(entry: ManifestEntry & { size: number }, offset: number): PartFile | null {
    let f = this.files.get(entry.path);
    if (f) return f;
    const { targetDir } = this.offer;
    const verified = this.verified[entry.path] ?? 0;
    // A sender older than `finishesVerified` sends the last chunk of a file verified to its end again: one finished
    // here is held whole, and the chunk has nothing to add (null).
    if (offset > 0 && verified === entry.size && isFinished(join(targetDir, entry.path), entry.size))
      return null;
    mkdirsNoFollow(targetDir, dirname(entry.path));
    f = new PartFile(
      join(targetDir, entry.path),
      entry.size,
      entry.mode ?? 0o644,
      offset === 0 ? 0 : verified,
    );
    this.files.set(entry.path, f);
    return f;
  }

  private updateFile(entry: ManifestEntry): UpdateFile {
    let f = this.updates.get(entry.path);
    if (f) return f;
    const { targetDir } = this.offer;
    mkdirsNoFollow(targetDir, dirname(entry.path));
    f = new UpdateFile(join(targetDir, entry.path), entry.mode ?? 0o644);
    this.updates.set(entry.path, f);
    return f;
  }

  /** Why a chunk has no place in the manifest: a full pass sends whole chunks in place, an update any extent. */
  private misplaced(h: ChunkFrame['header']): boolean {
    const entry = this.byPath.get(h.path);
    if (!entry) return true;
    // The header is the sender's JSON: a negative offset passes `% CHUNK` (-0) and makes writeSync write at the
    // file's current position, a missing one compares false with everything.
    if (!isCount(h.offset) || !isCount(h.id)) return true;
    return this.offer.update
      ? h.len > CHUNK || h.len <= 0 || h.offset + h.len > entry.size
      : h.offset % CHUNK !== 0 || h.offset >= entry.size || h.len !== Math.min(CHUNK, entry.size - h.offset);
  }

  private chunk({ header: h, payload, release }: ChunkFrame): void {
    if (this.failed) return release();
    if (this.misplaced(h)) {
      release();
      return this.fail(`chunk outside the manifest: ${h.path}@${h.offset}`);
    }
    const entry = this.byPath.get(h.path)!;
    try {
      // Opened at the file's first frame, whole or not: whether the sender starts the file over is told by the first
      // chunk it sent (a connection keeps their order), not by the first that arrived intact (partFile).
      const part = this.offer.update ? undefined : this.partFile(entry, h.offset);
      const digest = chunkDigest(payload);
      if (digest !== h.crc32) return this.reply(`bad ${h.id}`);
      if (part) part.write(h.offset, payload, digest);
      else if (part === undefined) this.updateFile(entry).write(h.offset, payload);
    } catch (err) {
      return this.fail(`cannot write ${h.path}: ${(err as Error).message}`);
    } finally {
      release();
    }
    this.reply(`ok ${h.id}`);
  }

  private end(): void {
    // A durable pass (the frozen one) first settles the background writebacks of its own files (write-backs.ts): one
    // that failed while this pass's sync ran could take the error the kernel reports once, and this sync return 0.
    const { targetDir, manifest } = this.offer;
    const before =
      this.offer.durable === true
        ? this.ctx.writeBacks.settle(
            manifest.filter((e) => e.kind === 'file').map((e) => join(targetDir, e.path)),
          )
        : Promise.resolve();
    // The syncs run on libuv's pool while the loop serves other transfers; the connection's close waits for them.
    // Meanwhile the sender has nothing to send and this side nothing to answer: "wait" now and then keeps both idle
    // timeouts from closing a connection whose finish takes longer (a writeback it settles, a busy disk's sync).
    const beat = setInterval(() => {
      if (this.sock.writable) this.reply('wait');
    }, this.ctx.idleMs / 3);
    this.finishing = before
      .then(() => this.finish())
      .catch((err: unknown) => this.fail(`cannot finish: ${(err as Error).message}`))
      .finally(() => clearInterval(beat));
  }

  /** The sender sent everything: every file complete (or already here), links placed, synced if durable; `done`. */
  private async finish(): Promise<void> {
    if (this.failed) return;
    const { offer } = this;
    const durable = offer.durable === true;
    const why = offer.update ? await this.finishUpdate(durable) : await this.finishFull(durable);
    if (why) return this.fail(why);
    // Links last, once nothing more is written below the target folder: no write ever goes through one.
    for (const e of offer.manifest) if (e.kind === 'symlink') placeLink(offer.targetDir, e);
    // The folders of every entry: a full pass renamed its files into them, an update pass's earlier live passes did,
    // unsynced.
    if (durable)
      for (const d of new Set([
        dirname(offer.targetDir),
        offer.targetDir,
        ...offer.manifest.map((e) => dirname(join(offer.targetDir, e.path))),
      ]))
        await syncDir(d);
    this.reply('done');
    this.sock.end();
    if (offer.writeBack && !durable)
      for (const e of offer.manifest)
        if (e.kind === 'file') this.ctx.writeBacks.start(join(offer.targetDir, e.path));
  }

  /** A full pass: each file renamed into place once all of it is verified. */
  private async finishFull(durable: boolean): Promise<string | undefined> {
    const { targetDir, manifest } = this.offer;
    for (const e of manifest) {
      const p = join(targetDir, e.path);
      if (e.kind !== 'file') continue;
      const size = e.size ?? 0;
      const f = this.files.get(e.path) ?? this.verifiedWhole(e, p, size);
      // A sync of the file that failed (in the background, or a durable pass's) is not undone by bytes read back from
      // the page cache: only a file written again from its first byte clears it (PartFile), which a sender told
      // of none of it verified does (verifiedPrefix).
      const lost = f || isFinished(p, size) ? lostWriteBack(targetDir, e.path) : undefined;
      if (lost) {
        f?.close();
        return lost;
      }
      if (f) {
        this.files.delete(e.path);
        if (!f.complete) {
          f.close();
          return `${e.path}: only ${f.prefix} of ${size} bytes verified`;
        }
        await f.finish(durable);
      } else if (isFinished(p, size)) {
        dropLeftovers(p);
        // Finished by an earlier pass: its writeback may not have run (settled in end(), or queued in a streamer
        // that has restarted since), so a durable pass syncs it itself.
        if (durable) await syncFile(p);
      } else if (size === 0) {
        mkdirsNoFollow(targetDir, dirname(e.path));
        createEmptyFile(p, e.mode ?? 0o644);
        dropLeftovers(p);
      } else return `${e.path}: never received`;
    }
    return undefined;
  }

  /**
   * A part file an earlier reception verified to its end (it was cut before its finish renamed it): the sender sends
   * none of it, and it is finished as if it had come now.
   */
  private verifiedWhole(e: ManifestEntry, p: string, size: number): PartFile | undefined {
    if (size === 0 || this.verified[e.path] !== size || isFinished(p, size)) return undefined;
    return this.partFile({ ...e, size }, size) ?? undefined;
  }

  /** An update pass: each file sent to is given its size; each other one must be there with its size already. */
  private async finishUpdate(durable: boolean): Promise<string | undefined> {
    const { targetDir, manifest } = this.offer;
    for (const e of manifest) {
      if (e.kind !== 'file') continue;
      const size = e.size ?? 0;
      const f = this.updates.get(e.path) ?? (e.extents?.length ? undefined : null);
      if (f === undefined) return `${e.path}: its extents never arrived`;
      const gap = f?.uncovered(e.extents ?? []);
      if (gap) {
        f?.close();
        return `${e.path}: its extent ${gap[0]}-${gap[1]} did not arrive whole`;
      }
      // A file an earlier pass did not leave here holds only what this pass wrote: all of it, or the copy is holes.
      if (f?.created && f.uncovered([[0, size]])) {
        f.close();
        return `${e.path}: not here from an earlier pass, and this pass did not send all ${size} bytes of it`;
      }
      const lost = lostWriteBack(targetDir, e.path);
      if (lost) {
        f?.close();
        return lost;
      }
      if (f) await f.finish(size, durable);
      else if (regularFileSize(join(targetDir, e.path)) !== size)
        return `${e.path}: not here with ${size} bytes from an earlier pass`;
      // The earlier passes were not synced: a durable update pass syncs every file of the copy.
      else if (durable) await syncFile(join(targetDir, e.path));
    }
    this.updates.clear();
    return undefined;
  }
}

/**
 * tls.connect takes `onread` as net.connect does (Node 15.1 on: nodejs/node#35753, "tls: allow reading data into a
 * static buffer"): OpenSSL decrypts each record straight into the buffer it gives. @types/node does not declare it.
 */
type TlsConnectOptions = ConnectionOptions & { onread: OnReadOpts };

/**
 * Open the data connection. Its reads land straight in the frame reader's buffers (`onread`): plain TCP's bytes as the
 * kernel hands them over, TLS's as OpenSSL decrypts them. With 'data' events instead, TLS handed out a fresh buffer
 * per read, copied into the frame buffers: bench:streamer measured the TLS receiver at 2.2–2.7 CPU-s/GB that way and
 * 1.4 with `onread`.
 */
function dial(offer: StreamOffer, reader: FrameReader, tls: TlsMaterial | undefined): Socket {
  const { host, port } = offer.connect;
  const onread: OnReadOpts = {
    buffer: () => reader.nextBuffer(),
    callback: (n: number) => reader.received(n),
  };
  if (!tls) return connect({ host, port, onread });
  const name = streamerIdentity(offer.fromNode);
  const options: TlsConnectOptions = {
    host,
    port,
    secureContext: clientContextOf(tls),
    onread,
    // The peer proves it is the sending node's streamer: the address alone (or a stolen token) proves nothing.
    checkServerIdentity: (_host, cert) =>
      namesStreamer(cert, offer.fromNode)
        ? undefined
        : new Error(`the peer's certificate does not name ${name}`),
  };
  return tlsConnect(options);
}

/** The offer's transfer id for a command: its id with what an offer's id may not hold replaced. */
export const transferIdOf = (commandId: string): string => commandId.replace(/[^A-Za-z0-9_:.-]/g, '_');

/** The command a log intends with this transfer id, if any. */
export function transferIntent(
  events: readonly MigrationEvent[],
  transferId: string,
): StepCommand | undefined {
  const intent = events.find(
    (e) => e.type === 'StepIntended' && transferIdOf(e.data.commandId) === transferId,
  );
  return intent?.type === 'StepIntended' ? intent.data : undefined;
}

/**
 * The offer against its migration's judged log, as `node` (this receiver): an open StepIntended of a streamer's step
 * whose command has the offer's transfer id, runs on the offer's node, and sends to this node into the very folder
 * the offer names. Only the coordinator's intents are believed (the judge), so only a transfer it asked for is
 * received; one whose outcome is in the log (or whose migration ended) is not received any more.
 */
export function offeredIntent(
  events: readonly MigrationEvent[],
  offer: StreamOffer,
  node: string,
): Refusal | undefined {
  const code = errorCodes.offerNotIntended;
  const cmd = transferIntent(events, offer.transferId);
  if (!cmd || !isStreamCommand(cmd))
    return refuse(code, 'transferId', `${offer.migrationId} intends no transfer ${offer.transferId}`);
  const args = cmd.args;
  if (cmd.node !== offer.fromNode)
    return refuse(
      code,
      'fromNode',
      `${offer.transferId} is intended from ${cmd.node}, not ${offer.fromNode}`,
    );
  if (args.toNode !== node)
    return refuse(
      code,
      'transferId',
      `${offer.transferId} is intended to ${String(args.toNode)}, not ${node}`,
    );
  if (args.targetDir !== offer.targetDir)
    return refuse(code, 'targetDir', `${offer.transferId} is intended into ${args.targetDir}`);
  if (commandFate(events, cmd.commandId) !== 'open')
    return refuse(code, 'transferId', `${offer.transferId} of ${offer.migrationId} has ended`);
  return undefined;
}

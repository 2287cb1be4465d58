import { isMigrationId } from '@haul/schemas';

/**
 * Every name and limit on the bus, defined once. Services, tests and the CLI import these; no subject, stream or
 * bucket name is spelled anywhere else.
 */
export const streams = {
  /** The migration log: one subject per migration, haul.events.<migrationId>. */
  events: 'HAUL_EVENTS',
  /** Commands to node agents and image streamers: haul.cmd.<node>.<executor>, a work queue. */
  commands: 'HAUL_COMMANDS',
  /** Messages a service could not handle (undecodable, invalid, or failing every time): parked, never redelivered. */
  deadLetters: 'HAUL_DEAD_LETTERS',
} as const;

export const buckets = {
  /** Node heartbeats and capabilities, key = node name. */
  nodes: 'haul-nodes',
  /** Current status of every migration, key = migration id. */
  status: 'haul-status',
  /**
   * The admission ledger: one value (key `admissionLedgerKey`) listing every admitted, unfinished migration with its
   * CT and nodes, changed only with compare-and-set, so "CT busy" and "node busy" are decided atomically.
   */
  admission: 'haul-admission',
  /** Where each node's image streamer takes data connections (StreamerRegistration), key = node name. */
  streamers: 'haul-streamers',
  /**
   * The latest report of each running transfer (bytes, rate, whether it waits on purpose), key =
   * progressKey(migrationId, commandId): telemetry and the stall rule's liveness, kept off the migration's log subject
   * so that reports never move the sequence its compare-and-set writers expect.
   */
  progress: 'haul-progress',
} as const;

/** The one key of the admission ledger bucket. */
export const admissionLedgerKey = 'ledger';

/**
 * A transfer's key in the progress bucket: `<migrationId>.<source node>.<the command id in base64url>`. Injective (a
 * command id may hold `.` and `:`, which a key token cannot); one migration's transfers share the prefix
 * progressKeys() watches, and a node's streamer may write only keys with its node (permissions.ts).
 */
export const progressKey = (migrationId: string, node: string, commandId: string): string =>
  `${token(migrationId)}.${token(node)}.${Buffer.from(commandId, 'utf8').toString('base64url')}`;

/** Every transfer key of one migration (a KV watch filter). */
export const progressKeys = (migrationId: string): string => `${token(migrationId)}.>`;

/** Every migration's log has a subject of its own: this, then the migration's id (one token). */
const eventsPrefix = 'haul.events.';

export const subjects = {
  eventsAll: `${eventsPrefix}>`,
  events: (migrationId: string): string => `${eventsPrefix}${token(migrationId)}`,
  commandsAll: 'haul.cmd.>',
  commands: (node: string, executor: Executor): string => `haul.cmd.${token(node)}.${executor}`,
  apiMigrate: 'haul.api.migrate',
  apiCancel: 'haul.api.cancel',
  apiStatus: 'haul.api.status',
  apiList: 'haul.api.list',
  /** Operator actions on a stuck migration (docs/protocol.md, "Stuck migrations"). */
  apiRetry: 'haul.api.retry',
  apiResolve: 'haul.api.resolve',
  /** Would this migration work (haul migrate --check)? Read only: nothing is admitted, locked, appended or sent. */
  apiCheck: 'haul.api.check',
  /** A node agent's read-only look at a CT, asked by a coordinator outside any migration (the check's preflight). */
  inspect: (node: string): string => `haul.inspect.${token(node)}`,
  /** Every node agent's inspection endpoint (a pattern, for permissions). */
  inspectAll: 'haul.inspect.*',
  /** Target streamer's negotiation endpoint. */
  streamOffer: (node: string): string => `haul.stream.${token(node)}.offer`,
  /** Every node's negotiation endpoint (a pattern, for permissions). */
  streamOffersAll: 'haul.stream.*.offer',
  /** Lease decisions for a frozen CT: the coordinator nudges the source agent (the log stays the truth). */
  nudge: (node: string): string => `haul.nudge.${token(node)}`,
  deadLettersAll: 'haul.dead.>',
  /** Where a service parks a message it cannot handle: haul.dead.<service>.<node>. */
  deadLetters: (service: string, node: string): string => `haul.dead.${token(service)}.${token(node)}`,
  /** Every instance's dead letters of one service (a pattern, for permissions). */
  deadLettersOf: (service: string): string => `haul.dead.${token(service)}.*`,
  /** Service discovery (ping/info/stats), one per service instance. */
  discovery: 'haul.discovery',
} as const;

export type Executor = 'agent' | 'streamer';

/**
 * Headers of an offer (haul.stream.<node>.offer). An offer's body has no unknown fields (an older receiver refuses
 * one), so what a sender can take in answer rides here: an older receiver ignores it.
 */
export const offerHeaders = {
  /** Present ('1'): the sender takes a read-back's progress as an answer and offers again (limits.streamReadBackAnswerMs). */
  takesReadBackProgress: 'Haul-Takes-Read-Back-Progress',
} as const;

export const limits = {
  /** Window within which a repeated msgID is recognised as a duplicate by JetStream. */
  duplicateWindowMs: 2 * 60 * 1000,
  /** How long migration events are kept. */
  eventsMaxAgeMs: 30 * 24 * 3600 * 1000,
  eventsMaxBytes: 1024 * 1024 * 1024,
  maxEventBytes: 256 * 1024,
  /** A parked message keeps at most this much of the original payload (the rest is cut, and the cut is said). */
  deadLetterPayloadBytes: 32 * 1024,
  deadLettersMaxAgeMs: 30 * 24 * 3600 * 1000,
  /** Heartbeat period and the age after which a node counts as gone. */
  heartbeatMs: 2_000,
  nodeStaleMs: 10_000,
  /**
   * A receiving streamer accepts an offer only from a node whose streamer registered the offer's data address at most
   * this long ago. The offer itself shows its sender is alive; the age only bounds how long a dead streamer's old
   * address is trusted. Longer than nodeStaleMs: on a loaded host (load average 27–42 on 2 cores) registrations
   * 10–13 s old refused good transfers and rolled migrations back.
   */
  streamerRegistrationMaxAgeMs: 60_000,
  /** Retry a JetStream call this long when the stream has no leader (503; elections measured 4–7.5 s, more under load). */
  leaderElectionRetryMs: 30_000,
  /** One JetStream publish waits this long for its ack before it is retried (within the budget above). */
  publishTimeoutMs: 2_000,
  /** A command unacked this long is redelivered (the executor extends it with working() while it runs). */
  commandAckWaitMs: 5_000,
  /**
   * An executor reads a command's log again after these waits before it refuses the command as intended nowhere. Its
   * intent was acknowledged before the command was sent, but a read after a stream's leader changed may not show it:
   * a nats-server before 2.11 lets a new leader answer before it has applied the entries it took over
   * (server/raft.go switchToLeader at v2.9.10; consistency came with 43e7a0279 in 2.11 and f73fede49 in 2.14,
   * "NRG: Always only report leader after noop-entry"). Seen once in a three-server CI run on 2.9.10 under load: a
   * good command refused, its migration rolled back. A command no coordinator intended is refused after them all.
   */
  intentReadAgainMs: [250, 1_000, 2_500],
  /**
   * A command checked within this long of its storage (and within half its own timeout), on its first delivery, is
   * checked on its log's first read: its migration cannot have ended since without an outcome of it, and the
   * coordinator gives no command up before its timeout. An older one (redelivered, or kept waiting in its lane or in
   * the stream) is read again after the waits above while the read shows neither its outcome nor its migration's end,
   * on a replicated event stream: a read behind could lack them (command-queue.ts checkedOnFirstRead).
   */
  commandFreshMs: 5_000,
  /** How many admitted migrations' logs a reap of the admission ledger reads at once (admission.ts reap). */
  reapReadsAtOnce: 16,
  /** One scheduler API request waits this long for its reply; an idempotent one is asked again until the deadline. */
  apiTimeoutMs: 5_000,
  apiDeadlineMs: 30_000,
  /**
   * A node agent's inspection of a CT (haul.inspect.<node>) runs `vzctl status` and criu's version and feature
   * checks: seconds on a loaded host, so longer than a plain API answer.
   */
  inspectTimeoutMs: 10_000,
  /** A check (haul.api.check) waits for both nodes' inspections and reads the CT's history: the client waits this long. */
  checkTimeoutMs: 20_000,
  /** How long a node agent or image streamer waits at start for the coordinator to create the streams and buckets. */
  topologyWaitMs: 120_000,
  /**
   * An admission with no MigrationRequested in the log this long is reaped (its CT and request id are free again).
   * Longer than one append can take, leader elections included (leaderElectionRetryMs).
   */
  admissionGraceMs: 120_000,
  /** How often the coordinator reconciles the admission ledger with the log. */
  admissionReapEveryMs: 30_000,
  /** How often the coordinator looks for a command durable led from a stream replica that is behind (consumer-leaders.ts). */
  consumerLeaderCheckMs: 10_000,
  /**
   * How long an executor whose command consumer ended on its own (deleted, its connection closed) lets the commands it
   * runs finish before it exits anyway. Waiting for them all kept it deaf to every other migration for as long as a
   * hung tool's timeout (vzctl's 3 minutes, a stream's 30). What it leaves unfinished is what a crash leaves, and the
   * next process recovers it so: an agent ends the tools (orphaned-tools.ts) and reconciles each step from its marker,
   * a streamer's transfer, delivered again, resumes from its part file. A stop waits for its steps.
   */
  lostConsumerGraceMs: 10_000,
  /**
   * A consumer's pull request lasts this long before the client asks again. After a server of the cluster dies the
   * client only notices at the next pull: with nats.js's default 30 s, consumers stayed deaf for 30–75 s in the soak.
   */
  pullExpiresMs: 5_000,
  /** Migrations whose log an executor keeps in memory, so a read fetches only the new events (withReadCache). */
  readCacheMigrations: 2_000,
  /**
   * Migrations an executor keeps current while they are written (withReadCache's keepCurrent: an ordered consumer
   * each): an agent, from its preflight to the migration's end, so its reads inside the frozen window are short. Past
   * it the oldest follow ends and its reads fetch what they miss, as before: slower, never wrong.
   */
  readCacheFollowed: 16,
  /**
   * Seals a replay has checked on libuv's thread pool at once (replay.ts): enough to keep its four threads busy while
   * the read goes on, few enough that what waits behind them (their migrations' messages) stays small.
   */
  replaySealsInFlight: 64,
  /**
   * Messages a replay of the whole log (EventLog.replay) holds while their migration's seal has not come: past it, the
   * oldest migration's are checked one by one and handed on. About 3 KB each, held: 50,000 is 150 MB at most, and
   * more than a thousand migrations running at once write before they end.
   */
  replayHeldMessages: 50_000,
  /**
   * Messages a replay of the whole log asks for in one pull. nats.js asks for 100 and again at half of them: a pull
   * every 50 messages made a replay of 480,000 (bench:control) wait on the server and write pull requests for about a
   * third of its time. With 1,000: 7.3 s instead of 9.8 s (medians of four), and a raw read of the stream 2.8 s
   * instead of 4.5 s.
   */
  replayPullMessages: 1_000,
  /**
   * Logs a replay from seals (EventLog.replaySeals) reads whole, each through a read of its own, when no seal can stand
   * for them: past it, one replay of the stream reads them all instead (a read of its own costs a consumer; a stream
   * of unsealed logs, read through one each, would take far longer than read once).
   */
  replaySealsReadEachMax: 64,
  /** Of those logs, how many are read at once. */
  replaySealsReadsAtOnce: 8,
  /** A read of one migration's log that receives nothing this long is given up and tried again. */
  readIdleMs: 10_000,
  /**
   * A read whose tail spans at most this many stream sequences gets them one message each, all requested at once,
   * instead of through a consumer made, pulled and deleted for it (an executor's read before a command: the few
   * intents the coordinator just appended).
   */
  directReadMaxSeqs: 16,
  /**
   * A read whose tail spans more stream sequences walks the subject message by message (a get of the next one) for at
   * most this many, then reads the rest through a consumer: a round trip each against the five of a consumer made,
   * pulled and deleted, and much less of the server's CPU (EventLog's walk).
   */
  walkReadMaxMsgs: 8,
  /**
   * Commands an executor holds at once (its consumer's max_ack_pending): a node agent runs each migration's one at
   * a time and different migrations' side by side (the command queue's lanes), an image streamer checks and hands
   * over each as it comes. Far above what admission lets a node take part in (maxPerNode, 2 by default) times the
   * commands one migration sends an executor at once (a shared disk's preparation: three per disk); bench:control
   * admits 50 per node.
   */
  commandsInHand: 256,
  /**
   * A command of a migration whose agent has not run an earlier one yet (handed over out of order after a restart)
   * goes back to the stream for this long; the earlier one comes first. Twice as long each time it comes back too
   * early again, up to commandTooEarlyMaxMs (the node agent's too-early.ts).
   */
  commandTooEarlyMs: 250,
  commandTooEarlyMaxMs: 4000,
  /** Events the coordinator handles at once (of different migrations; one migration is always serial). */
  coordinatorConcurrentEvents: 64,
  /**
   * An active migration the coordinator heard nothing of for this long is checked against the log (a message get;
   * a read of the events it has not folded only when there are some) and ticked: the safety net behind its timers.
   */
  coordinatorResyncMs: 10_000,
  /** Deliveries of one event the coordinator tries before it parks it (the log keeps it; its migration's timer goes on). */
  eventRedeliveries: 8,
  /**
   * A data connection to a streamer must complete its TLS handshake and present its token within this long, or it
   * is closed (a connection that sends nothing holds a socket, a file descriptor and a slot of its peer).
   */
  streamHandshakeMs: 15_000,
  /**
   * A sender waits this long for its receiver to connect and pass the handshake after an offer was accepted; then it
   * offers again. Longer than the handshake: on a loaded host a TLS handshake alone took more than 5 s (measured at a
   * load average of 35 on 2 cores), and a connection that fails it must not fail the transfer with it.
   */
  streamConnectMs: 20_000,
  /** A sender waits this long for the answer to its offer, then offers again (one of its retries). */
  streamOfferTimeoutMs: 10_000,
  /**
   * A receiver that reads back part files to answer an offer (what of them is verified: minutes for 100 GiB) answers
   * after this long with how far it read, when the offer says its sender takes such an answer (offerHeaders), and
   * reads on. The sender offers again at once and reports that it waits on purpose while the bytes read grow: a
   * read-back longer than the stall time ended the transfer before. Well under streamOfferTimeoutMs.
   */
  streamReadBackAnswerMs: 2_000,
  /**
   * An established data connection on which nothing moves this long is closed, on either end (a receiver that stops
   * reading, a sender that stops sending). Longer than the sync of a large local disk copy before "done" (the sender's
   * timer runs during it; the receiver's as well, since its syncs run off its loop, but a close then waits for the
   * finish under way: receiver.ts).
   */
  streamIdleMs: 60_000,
  /**
   * Data connections one peer may hold at once at a streamer, on each end: connections not yet past their token on
   * the sending side (a new one evicts the oldest, so held sockets cannot keep a real one out), transfers being
   * received from one node on the receiving side (more offers are refused). Above the transfers a sender runs at once.
   */
  streamConnectionsPerPeer: 8,
  /** A streamer reports a running transfer at most this often (and this often while it waits on purpose). */
  progressEveryMs: 1_000,
  /**
   * A report nobody rewrote for this long is dropped from the progress bucket (a streamer that died mid-transfer).
   * Far above the stall time: a transfer silent for so long was given up long before.
   */
  progressTtlMs: 10 * 60_000,
} as const;

/** Step timeouts, by the tool they wait on (criu 180 s as P.Haul). */
export const stepTimeoutsMs = {
  criu: 180_000,
  ploop: 120_000,
  vzctl: 180_000,
  stream: 30 * 60_000,
  quick: 30_000,
} as const;

/**
 * A transfer whose bytes have not moved for this long is given up (HAUL_STREAM_STALLED), long before its timeout: the
 * default of the coordinator's streamStallMs setting (HAUL_STREAM_STALL_MS, 10 s to 5 min: ten progress reports at
 * least, half of progressTtlMs at most, so the report a stall is judged by is still in the bucket).
 */
export const streamStallMs = 30_000;

export const defaultFrozenLeaseMs = 60_000;
/** The longest frozen lease a command may carry (the schema's bound); a node agent may cap it lower (HAUL_MAX_LEASE_MS). */
export const maxFrozenLeaseMs = 15 * 60_000;

/** A name (node, migration) as one subject token, or an error saying why it is not one. */
export const subjectToken = (s: string): string => token(s);

/**
 * The migration whose log a subject of the event stream is; undefined for a subject no migration has (not a valid
 * migration id: no event there is one any reader believes, since an event counts only on its own migration's subject).
 */
export function migrationOfEventSubject(subject: string): string | undefined {
  const migrationId = subject.slice(eventsPrefix.length);
  return subject.startsWith(eventsPrefix) && isMigrationId(migrationId) ? migrationId : undefined;
}

const isToken = (s: string): boolean => /^[A-Za-z0-9_-]+$/.test(s);

function token(s: string): string {
  if (!isToken(s)) throw new Error(`not a valid subject token: ${JSON.stringify(s)}`);
  return s;
}

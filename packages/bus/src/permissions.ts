/**
 * Who may do what on the bus: the one table of NATS permissions per role, as a function of the node. The
 * nats-server configuration (`haul init-cluster`), the permission matrix test and the table in docs/security.md are
 * all rendered from it. Every grant names what in the code needs it; anything not granted is refused by the server.
 *
 * Subjects the JetStream API uses against nats-server 2.9 with nats.js 3.4 (seen in a server trace, checked by the
 * matrix test): a consumer with a name and one filter is created on `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`
 * (the server refuses a body whose filter differs from the subject's), so a filter in the subject is enforced;
 * ordered consumers are named `<nuid>_<n>` (KV's `oc_<nuid>_<n>`); a KV get is `STREAM.MSG.GET.KV_<bucket>` (haul's
 * buckets have no direct get); acks are `$JS.ACK.<stream>.<consumer>.…`.
 */
import { executorServices, type Actor } from '@haul/schemas';
import {
  admissionLedgerKey,
  buckets,
  streams,
  subjects,
  subjectToken,
  type Executor,
} from './conventions.ts';
import { commandConsumerName } from './command-queue.ts';
import { bucketStream, topologyNames } from './streams.ts';

export const roles = ['coordinator', 'agent', 'streamer', 'scheduler', 'ops'] as const;
export type Role = (typeof roles)[number];

/** One identity of a cluster: `coordinator`, `agent@<node>`, `streamer@<node>`, `scheduler`, `ops`. */
export type Identity = { name: string; role: Role; node?: string };

/** The public registry of a cluster's identities, DIR/identities.json as `haul init-cluster` writes it. */
export type IdentitiesFile = { cluster: string; identities: (Identity & { publicKey: string })[] };

const perNode: Partial<Record<Role, Executor>> = { agent: 'agent', streamer: 'streamer' };

/** The name of a role's identity (per node for agents and streamers). */
export function identityName(role: Role, node?: string): string {
  if (perNode[role] === undefined) return role;
  if (node === undefined) throw new Error(`the ${role} identity belongs to a node`);
  return `${role}@${subjectToken(node)}`;
}

/** Every identity of a cluster of these nodes, in a stable order. */
export function clusterIdentities(nodes: readonly string[]): Identity[] {
  return [
    { name: identityName('coordinator'), role: 'coordinator' },
    ...nodes.flatMap((node): Identity[] => [
      { name: identityName('agent', node), role: 'agent', node },
      { name: identityName('streamer', node), role: 'streamer', node },
    ]),
    { name: identityName('scheduler'), role: 'scheduler' },
    { name: identityName('ops'), role: 'ops' },
  ];
}

/**
 * Where an identity receives replies and consumer deliveries: its own inbox prefix (nats.js `inboxPrefix`), the
 * only `_INBOX` subjects it may subscribe to. With one shared `_INBOX.>` any identity could read every reply and
 * every message pulled by any other (commands, events, KV values).
 */
export const inboxPrefix = (publicKey: string): string => `_INBOX.${publicKey}`;

/** The names services park their dead letters under (haul.dead.<service>.<node>). */
export const serviceNames = {
  coordinator: 'coordinator',
  ...executorServices,
} as const satisfies Record<'coordinator' | Executor, Actor['service']>;

/** One grant: a subject (or pattern) and what in haul needs it. */
export type Grant = { subject: string; why: string };

export type Permissions = {
  publish: { allow: Grant[]; deny: Grant[] };
  subscribe: { allow: Grant[]; deny: Grant[] };
  /** May answer requests (publish once to the reply subject of a request it received, nats-server allow_responses). */
  allowResponses: boolean;
};

const api = '$JS.API';

/** The JetStream API request that moves a consumer's leadership to another server of its group. */
export const consumerLeaderStepDown = (stream: string, consumer: string): string =>
  `${api}.CONSUMER.LEADER.STEPDOWN.${stream}.${consumer}`;
const jsApi = {
  info: `${api}.INFO`,
  streamNames: `${api}.STREAM.NAMES`,
  streamInfo: (s: string) => `${api}.STREAM.INFO.${s}`,
  streamCreate: (s: string) => `${api}.STREAM.CREATE.${s}`,
  streamUpdate: (s: string) => `${api}.STREAM.UPDATE.${s}`,
  msgGet: (s: string) => `${api}.STREAM.MSG.GET.${s}`,
  consumerCreate: (s: string, name: string, filter: string) =>
    `${api}.CONSUMER.CREATE.${s}.${name}.${filter}`,
  consumerInfo: (s: string, name: string) => `${api}.CONSUMER.INFO.${s}.${name}`,
  next: (s: string, name: string) => `${api}.CONSUMER.MSG.NEXT.${s}.${name}`,
  ack: (s: string, name: string) => `$JS.ACK.${s}.${name}.>`,
  consumerList: (s: string) => `${api}.CONSUMER.LIST.${s}`,
  consumerStepDown: consumerLeaderStepDown,
};
const kvSubject = (bucket: string, key: string): string => `$KV.${bucket}.${key}`;
const g = (subject: string, why: string): Grant => ({ subject, why });

/** The coordinator's durable consumer of every event (services/coordinator/src/app.ts). */
export const coordinatorConsumer = 'coordinator';

/** Read one migration's log or follow all of it: message gets and ordered consumers (event-log.ts). */
const readEvents = (): Grant[] => [
  g(
    jsApi.streamInfo(streams.events),
    'event log: ordered consumers look up the stream; `haul events` its last sequence; the command queue its replicas',
  ),
  g(
    jsApi.msgGet(streams.events),
    "event log: a migration's last event, and a short tail one message at a time (read)",
  ),
  g(
    jsApi.consumerCreate(streams.events, '*', subjects.eventsAll),
    'event log: ordered consumers (read, follow)',
  ),
  g(jsApi.consumerInfo(streams.events, '*'), 'event log: ordered consumers'),
  g(jsApi.next(streams.events, '*'), 'event log: ordered consumers pull'),
];

/** Ordered consumers must not reach the coordinator's durable, which the patterns above would match. */
const notTheCoordinatorsConsumer = (): Grant[] => [
  g(
    jsApi.consumerCreate(streams.events, coordinatorConsumer, '>'),
    "the coordinator's durable: never changed by others",
  ),
  g(jsApi.next(streams.events, coordinatorConsumer), "the coordinator's durable: never pulled by others"),
];

/** Read a bucket: open it, get a key, list its keys (an ordered push consumer on `$KV.<bucket>.>`). */
const readBucket = (bucket: string, keys: boolean): Grant[] => [
  g(jsApi.streamInfo(bucketStream(bucket)), `${bucket}: open the bucket`),
  g(jsApi.msgGet(bucketStream(bucket)), `${bucket}: get a key`),
  ...(keys
    ? [
        g(jsApi.consumerCreate(bucketStream(bucket), '*', kvSubject(bucket, '>')), `${bucket}: list keys`),
        g(jsApi.consumerInfo(bucketStream(bucket), '*'), `${bucket}: list keys`),
      ]
    : []),
];

/** A node executor's own durable on HAUL_COMMANDS (command-queue.ts): create, look up, pull, ack. Nothing else. */
function ownCommands(node: string, executor: Executor): Grant[] {
  const durable = commandConsumerName(node, executor);
  const why = `its command queue (durable ${durable})`;
  return [
    g(jsApi.consumerCreate(streams.commands, durable, subjects.commands(node, executor)), why),
    g(jsApi.consumerInfo(streams.commands, durable), why),
    g(jsApi.next(streams.commands, durable), why),
    g(jsApi.ack(streams.commands, durable), `${why}: ack, nak, term, working`),
  ];
}

/** What a node's agent or streamer needs besides its own role's subjects. */
function nodeService(node: string, executor: Executor, service: string): Grant[] {
  return [
    g(jsApi.info, 'JetStream client start (account info)'),
    g(jsApi.streamNames, 'awaitTopology: waits for the coordinator to create the streams'),
    ...ownCommands(node, executor),
    g(subjects.eventsAll, 'append its outcome events (which node may say what is checked by signatures)'),
    ...readEvents(),
    g(subjects.deadLetters(service, node), 'park a command it cannot handle'),
  ];
}

const apiSubjects = {
  migrate: subjects.apiMigrate,
  cancel: subjects.apiCancel,
  retry: subjects.apiRetry,
  resolve: subjects.apiResolve,
  status: subjects.apiStatus,
  list: subjects.apiList,
  check: subjects.apiCheck,
};
/** Requests that change nothing: a status, the list, and a check (haul migrate --check), which only reads. */
const readApi = [apiSubjects.status, apiSubjects.list, apiSubjects.check];
/** The one role that may make requests that change something (NATS grants `changeApi` to it alone). */
export const changeApiRole: Role = 'scheduler';
/** Requests that change something: only the `changeApiRole` identity may make them. */
export const changeApi: readonly string[] = [
  apiSubjects.migrate,
  apiSubjects.cancel,
  apiSubjects.retry,
  apiSubjects.resolve,
];

/** Read-only tools: the CLI's status, ls, events, nodes and services. */
function reader(): Grant[] {
  return [
    g(jsApi.info, 'JetStream client start (account info)'),
    ...readApi.map((s) => g(s, 'scheduler API (read)')),
    g(subjects.discovery, '`haul services`'),
    ...readEvents(),
    ...readBucket(buckets.nodes, true),
    ...readBucket(buckets.progress, true),
  ];
}

function coordinatorPublish(): Grant[] {
  const topology = topologyNames();
  return [
    g(jsApi.info, 'JetStream client start (account info)'),
    ...topology.map((s) => g(jsApi.streamInfo(s), 'ensureTopology: look up')),
    ...topology.map((s) => g(jsApi.streamCreate(s), 'ensureTopology: create')),
    ...topology.map((s) => g(jsApi.streamUpdate(s), 'ensureTopology: change replicas (HAUL_REPLICAS)')),
    g(
      jsApi.consumerCreate(streams.events, coordinatorConsumer, subjects.eventsAll),
      'its durable of every event',
    ),
    g(jsApi.consumerInfo(streams.events, coordinatorConsumer), 'its durable of every event'),
    g(jsApi.next(streams.events, coordinatorConsumer), 'its durable of every event'),
    g(jsApi.ack(streams.events, coordinatorConsumer), 'its durable of every event: ack, nak, term'),
    ...readEvents(),
    g(subjects.eventsAll, 'append migration events'),
    g(subjects.commandsAll, 'send step commands'),
    g(
      jsApi.msgGet(streams.commands),
      "when a command another coordinator sent was stored: its step's deadline counts from then",
    ),
    g(subjects.inspectAll, 'ask node agents to inspect a CT (haul.api.check)'),
    g(jsApi.consumerList(streams.commands), 'command durables led from a replica that is behind'),
    g(
      jsApi.consumerStepDown(streams.commands, '*'),
      'move such a durable to a current server (consumer-leaders.ts)',
    ),
    g(subjects.deadLettersOf(serviceNames.coordinator), 'park an event it cannot handle'),
    ...readBucket(buckets.status, true),
    g(kvSubject(buckets.status, '*'), 'write migration statuses'),
    ...readBucket(buckets.admission, false),
    g(kvSubject(buckets.admission, admissionLedgerKey), 'admission ledger (compare-and-set)'),
    // Listing the nodes' keys: its metrics show each node's heartbeat age (haul_node_heartbeat_age_seconds).
    ...readBucket(buckets.nodes, true),
    ...readBucket(buckets.progress, false),
  ];
}

/** What no identity may do, whatever a wider allow above matches. */
const destructive = (): Grant[] => [
  g(`${api}.STREAM.DELETE.>`, 'delete a stream'),
  g(`${api}.STREAM.PURGE.>`, 'purge a stream'),
  g(`${api}.STREAM.MSG.DELETE.>`, 'delete a message'),
  g(`${api}.CONSUMER.DELETE.>`, 'delete a consumer'),
];

const ownInbox = (publicKey: string): Grant =>
  g(`${inboxPrefix(publicKey)}.>`, 'its replies and consumer deliveries');

/** Grants by subject, each once (several uses of one subject keep the first reason). */
function unique(grants: Grant[]): Grant[] {
  const seen = new Set<string>();
  return grants.filter((gr) => !seen.has(gr.subject) && seen.add(gr.subject));
}

/** The permissions of one identity, whose nkey is `publicKey` (its inbox prefix). */
export function permissionsFor(id: Identity, publicKey: string): Permissions {
  const p = rolePermissions(id, publicKey);
  return {
    publish: { allow: unique(p.publish.allow), deny: unique(p.publish.deny) },
    subscribe: { allow: unique(p.subscribe.allow), deny: unique(p.subscribe.deny) },
    allowResponses: p.allowResponses,
  };
}

function rolePermissions(id: Identity, publicKey: string): Permissions {
  const inbox = ownInbox(publicKey);
  const deny = destructive();
  switch (id.role) {
    case 'coordinator':
      return {
        publish: { allow: coordinatorPublish(), deny },
        subscribe: {
          allow: [
            ...Object.values(apiSubjects).map((s) => g(s, 'answer the scheduler API')),
            g(subjects.discovery, 'answer discovery'),
            inbox,
          ],
          deny: [],
        },
        allowResponses: true,
      };
    case 'agent':
    case 'streamer':
      return nodePermissions(id, inbox, deny);
    case 'scheduler':
      return {
        publish: {
          allow: [
            ...reader(),
            ...(id.role === changeApiRole
              ? changeApi.map((s) => g(s, 'scheduler API (migrate, cancel, retry, resolve)'))
              : []),
          ],
          deny: [...deny, ...notTheCoordinatorsConsumer()],
        },
        subscribe: { allow: [inbox], deny: [] },
        allowResponses: false,
      };
    case 'ops':
      return {
        publish: { allow: reader(), deny: [...deny, ...notTheCoordinatorsConsumer()] },
        subscribe: { allow: [inbox], deny: [] },
        allowResponses: false,
      };
  }
}

function nodePermissions(id: Identity, inbox: Grant, deny: Grant[]): Permissions {
  const node = id.node;
  if (node === undefined) throw new Error(`${id.name}: an ${id.role} identity belongs to a node`);
  const executor = perNode[id.role]!;
  const allow =
    executor === 'agent'
      ? [
          ...nodeService(node, 'agent', serviceNames.agent),
          g(jsApi.streamInfo(bucketStream(buckets.nodes)), `${buckets.nodes}: open the bucket`),
          g(kvSubject(buckets.nodes, node), 'its own heartbeat'),
        ]
      : [
          ...nodeService(node, 'streamer', serviceNames.streamer),
          g(subjects.streamOffersAll, 'offer a transfer to the target streamer'),
          ...readBucket(buckets.streamers, false),
          g(kvSubject(buckets.streamers, node), 'register its own data address'),
          g(jsApi.streamInfo(bucketStream(buckets.progress)), `${buckets.progress}: open the bucket`),
          g(kvSubject(buckets.progress, `*.${node}.*`), 'the progress reports of the transfers it sends'),
        ];
  const subscribe =
    executor === 'agent'
      ? [
          g(subjects.inspect(node), 'answer inspections of its CTs (haul.api.check)'),
          g(subjects.discovery, 'answer discovery'),
          inbox,
        ]
      : [
          g(subjects.streamOffer(node), 'receive transfer offers'),
          g(
            subjects.eventsAll,
            "hear a migration's new events while it sends for it, to read its log for a give-up (it may read every log)",
          ),
          g(subjects.discovery, 'answer discovery'),
          inbox,
        ];
  return {
    publish: { allow, deny: [...deny, ...notTheCoordinatorsConsumer()] },
    subscribe: { allow: subscribe, deny: [] },
    allowResponses: true,
  };
}

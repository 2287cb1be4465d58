import { basename, join } from 'node:path';
import { dump } from 'js-yaml';
import { format, resolveConfig } from 'prettier';
import {
  buckets,
  commandConsumerName,
  limits,
  streams,
  subjects,
  admissionLedgerKey,
  type Executor,
} from '@haul/bus';
import { readSchemaDocuments, schemaDir, type SchemaDocument } from '../src/schema-files.ts';
import { isSettingsSchema, schemaIds, type SchemaName } from '../src/schema-ids.ts';
import { bundleForTypes } from './bundle.ts';

/**
 * The AsyncAPI 3.0 contract of every subject on the bus, generated: the subjects from packages/bus conventions (a
 * placeholder token per parameter), the payloads from schemas/json (each schema once, under components.schemas).
 * `npm run gen:asyncapi` writes docs/asyncapi.yaml and its Markdown rendering docs/asyncapi.md; a test checks both
 * are fresh and that @asyncapi/parser finds no error.
 */

export const asyncApiPath = join(schemaDir, '..', '..', 'docs', 'asyncapi.yaml');
export const asyncApiMarkdownPath = join(schemaDir, '..', '..', 'docs', 'asyncapi.md');

/** A subject with parameters: conventions build it from placeholder tokens, turned into {name} here. */
const param = (name: string): string => `__${name}__`;
const address = (subject: string): string => subject.replace(/__([A-Za-z]+)__/g, '{$1}');

/** JetStream's KV subjects (a NATS convention, not haul's): a bucket's key `k` is the subject $KV.<bucket>.<k>. */
const kvSubject = (bucket: string, key: string): string => `$KV.${bucket}.${key}`;

/**
 * The signature headers of the trust design (packages/bus/src/trust `signatureHeaders`):
 * described here, never in the JSON body.
 */
const signatureHeaders = { signer: 'Haul-Signer', signature: 'Haul-Signature' } as const;

type Trait = 'signed' | 'deduplicated' | 'appended';
type Operation = { id: string; action: 'send' | 'receive'; summary: string };
type Channel = {
  id: string;
  address: string | null;
  title: string;
  description: string;
  /** The messages sent on the subject (none: the subject is reserved). */
  messages: SchemaName[];
  traits?: Trait[];
  /** Request/reply: the reply's schema (sent to the requester's inbox). */
  reply?: SchemaName;
  operations: Operation[];
};
type SubjectKey = keyof typeof subjects;
/**
 * A subject of conventions that is a wildcard over a channel (a consumer's filter or a permission). One that
 * conventions build from parameters must say how, from placeholder tokens (its function's source is no subject).
 */
type Wildcard<K extends SubjectKey> = (typeof subjects)[K] extends string
  ? { wildcardOf: SubjectKey }
  : { wildcardOf: SubjectKey; subject: string };

const nodeParam = { description: 'A node name (NodeName in common.schema.json), e.g. node-a.' };
const parameters: Record<string, { description: string; enum?: string[] }> = {
  node: nodeParam,
  executor: {
    description: 'Who runs the command on that node.',
    enum: ['agent', 'streamer'] satisfies Executor[],
  },
  migrationId: { description: 'The migration id (MigrationId in common.schema.json).' },
  service: { description: 'The service that parked the message: coordinator, node-agent or image-streamer.' },
  commandId: {
    description:
      'A command id in base64url (a key token cannot hold its `:` and `.`): progressKey() in packages/bus/src/conventions.ts.',
  },
};

const api = (id: string, subject: string, request: SchemaName, reply: SchemaName, what: string): Channel => ({
  id,
  address: subject,
  title: subject,
  description: `${what} Core NATS request/reply: coordinators answer in the queue group \`coordinator\`; the request is checked against its schema and a refusal names the code and the field (docs/api.md).`,
  messages: [request],
  reply,
  operations: [
    {
      id: `answer${id[3]!.toUpperCase()}${id.slice(4)}`,
      action: 'receive',
      summary: `A coordinator answers; schedulers and ops (\`npx haul\`) ask.`,
    },
  ],
});

/** Every subject of conventions, each a channel or a wildcard over one: a new subject without an entry fails tsc. */
const subjectChannels: { [K in SubjectKey]: Channel | Wildcard<K> } = {
  apiMigrate: api(
    'apiMigrate',
    subjects.apiMigrate,
    'migrateRequest',
    'migrateReply',
    'Ask for a migration.',
  ),
  apiCancel: api('apiCancel', subjects.apiCancel, 'cancelRequest', 'statusReply', 'Cancel a migration.'),
  apiStatus: api('apiStatus', subjects.apiStatus, 'statusRequest', 'statusReply', 'One migration’s status.'),
  apiList: api(
    'apiList',
    subjects.apiList,
    'listRequest',
    'statusReply',
    'Every (active) migration’s status.',
  ),
  apiRetry: api(
    'apiRetry',
    subjects.apiRetry,
    'retryRequest',
    'statusReply',
    'Retry the stuck action of a migration.',
  ),
  apiResolve: api(
    'apiResolve',
    subjects.apiResolve,
    'resolveRequest',
    'statusReply',
    'Say that a stuck action was done by hand.',
  ),
  apiCheck: api(
    'apiCheck',
    subjects.apiCheck,
    'migrateRequest',
    'checkReply',
    'Would this migration work, what would it copy, how long would the CT be frozen (`haul migrate --check`)? Nothing is admitted, locked, appended or sent to a host but read-only inspections.',
  ),
  inspectAll: { wildcardOf: 'inspect' },
  inspect: {
    id: 'inspect',
    address: address(subjects.inspect(param('node'))),
    title: 'CT inspections',
    description:
      'A coordinator asks a node agent what it sees of a CT outside any migration (the checks of a preflight, read only: no image folder, no tool that changes anything), for `haul.api.check`. Only a request signed by a coordinator is answered.',
    messages: ['inspectRequest'],
    traits: ['signed'],
    reply: 'inspectReply',
    operations: [
      {
        id: 'answerInspect',
        action: 'receive',
        summary: 'The node agent of that node answers (queue group node-agent).',
      },
    ],
  },
  commandsAll: { wildcardOf: 'commands' },
  streamOffersAll: { wildcardOf: 'streamOffer' },
  deadLettersOf: { wildcardOf: 'deadLetters', subject: subjects.deadLettersOf(param('service')) },
  commands: {
    id: 'commands',
    address: address(subjects.commands(param('node'), param('executor') as Executor)),
    title: 'Step commands',
    description: `A command to one node's agent or image streamer, in the work-queue stream \`${streams.commands}\`. Each executor reads its own durable consumer (\`${address(commandConsumerName(param('node'), param('executor') as Executor))}\`, explicit acks, ack wait ${limits.commandAckWaitMs} ms, extended while the step runs; an agent's has one command out at a time, so it runs them in stored order even across its restarts). The same object is first recorded in the migration's StepIntended event.`,
    messages: ['command'],
    traits: ['signed', 'deduplicated'],
    operations: [
      { id: 'sendCommand', action: 'send', summary: 'The coordinator sends the commands it intended.' },
      {
        id: 'receiveCommand',
        action: 'receive',
        summary:
          'The node agent (executor agent) or image streamer (executor streamer) of that node runs it.',
      },
    ],
  },
  eventsAll: { wildcardOf: 'events' },
  events: {
    id: 'events',
    address: address(subjects.events(param('migrationId'))),
    title: 'Migration events',
    description: `The migration's log in the stream \`${streams.events}\`: one subject per migration, every event appended with compare-and-set on the subject's last sequence. The coordinator reads every migration through its durable consumer (filter \`${subjects.eventsAll}\`); ops follow it (\`npx haul events -f\`).`,
    messages: ['event'],
    traits: ['signed', 'deduplicated', 'appended'],
    operations: [
      {
        id: 'appendEvent',
        action: 'send',
        summary: 'Every service appends what it decided or observed (the coordinator, agents, streamers).',
      },
      {
        id: 'consumeEvents',
        action: 'receive',
        summary:
          'The coordinator folds each migration’s log; executors read it to fence and to skip duplicates.',
      },
    ],
  },
  streamOffer: {
    id: 'streamOffer',
    address: address(subjects.streamOffer(param('node'))),
    title: 'Stream offers',
    description:
      'The sending image streamer offers a transfer (manifest and where to connect) to the target node’s streamer, which checks it and says what it already verified; the bytes then go over TCP, not NATS.',
    messages: ['streamOffer'],
    reply: 'streamOfferReply',
    operations: [
      {
        id: 'answerStreamOffer',
        action: 'receive',
        summary: 'The target node’s image streamer answers (queue group image-streamer).',
      },
    ],
  },
  nudge: {
    id: 'nudge',
    address: address(subjects.nudge(param('node'))),
    title: 'Lease nudges (reserved)',
    description:
      'Reserved for the coordinator to nudge a source agent about a frozen CT’s lease (the log stays the truth). No service publishes on it in this version, so it has no message.',
    messages: [],
    operations: [],
  },
  deadLettersAll: { wildcardOf: 'deadLetters' },
  deadLetters: {
    id: 'deadLetters',
    address: address(subjects.deadLetters(param('service'), param('node'))),
    title: 'Dead letters',
    description: `Messages a service could not handle (undecodable, invalid, unauthenticated, failing every time), parked in the stream \`${streams.deadLetters}\` and never redelivered; read them with \`nats stream view ${streams.deadLetters}\`.`,
    messages: ['deadLetter'],
    operations: [{ id: 'parkMessage', action: 'send', summary: 'Any service parks what it refused.' }],
  },
  discovery: {
    id: 'discovery',
    address: subjects.discovery,
    title: 'Discovery',
    description:
      'Every coordinator, node agent and image streamer answers a request here (ask with a multi-reply request, as `npx haul services` does); the request body is ignored.',
    messages: [],
    reply: 'discoveryInfo',
    operations: [
      {
        id: 'answerDiscovery',
        action: 'receive',
        summary: 'Every service instance answers (no queue group: all answer).',
      },
    ],
  },
};

/** Every bucket of conventions, as the KV subjects its values are put on: a new bucket without an entry fails tsc. */
const bucketChannels: Record<keyof typeof buckets, Channel> = {
  nodes: {
    id: 'nodeHeartbeats',
    address: kvSubject(buckets.nodes, '{node}'),
    title: `KV ${buckets.nodes}`,
    description: `Each node agent puts its heartbeat and capabilities every ${limits.heartbeatMs} ms under its node's key; a heartbeat older than ${limits.nodeStaleMs} ms counts as gone (admission refuses the node).`,
    messages: ['nodeHeartbeat'],
    operations: [
      { id: 'putHeartbeat', action: 'send', summary: 'The node agent of the node.' },
      {
        id: 'readHeartbeat',
        action: 'receive',
        summary: 'Coordinators (admission, metrics) and `npx haul nodes`.',
      },
    ],
  },
  status: {
    id: 'migrationStatuses',
    address: kvSubject(buckets.status, '{migrationId}'),
    title: `KV ${buckets.status}`,
    description:
      'The current-status projection of each migration, put by the coordinator after each change (the log stays the truth).',
    messages: ['migrationStatus'],
    operations: [
      { id: 'putStatus', action: 'send', summary: 'The coordinator that advanced the migration.' },
      { id: 'readStatus', action: 'receive', summary: '`haul.api.list` and ops.' },
    ],
  },
  streamers: {
    id: 'streamerRegistrations',
    address: kvSubject(buckets.streamers, '{node}'),
    title: `KV ${buckets.streamers}`,
    description: `Each image streamer puts its data listener's address (host, port, TLS) under its node's key at start and every ${limits.heartbeatMs} ms; a receiving streamer connects only to the address the offering node registered recently.`,
    messages: ['streamerRegistration'],
    operations: [
      { id: 'putStreamerRegistration', action: 'send', summary: 'The image streamer of the node.' },
      {
        id: 'readStreamerRegistration',
        action: 'receive',
        summary: 'Receiving image streamers (before connecting).',
      },
    ],
  },
  admission: {
    id: 'admissionLedger',
    address: kvSubject(buckets.admission, admissionLedgerKey),
    title: `KV ${buckets.admission}`,
    description:
      'The admission ledger: one value changed only with compare-and-set by coordinators. Internal to coordinators (services/coordinator/src/admission-ledger.ts), not part of the contract, so no message is listed.',
    messages: [],
    operations: [],
  },
  progress: {
    id: 'transferProgress',
    address: kvSubject(buckets.progress, '{migrationId}.{node}.{commandId}'),
    title: `KV ${buckets.progress}`,
    description: `The latest report of each running transfer, beside the migration's log (docs/protocol.md, "Image streaming"): rewritten at most every ${limits.progressEveryMs} ms while its bytes move and every ${limits.progressEveryMs} ms while it waits on purpose, removed once its outcome is in the log; the coordinator's stall rule reads it.`,
    messages: ['transferProgress'],
    operations: [
      { id: 'putProgress', action: 'send', summary: 'The image streamer that sends the transfer.' },
      {
        id: 'readProgress',
        action: 'receive',
        summary: 'Coordinators (the stall rule, at a deadline) and `npx haul migrate` (watch).',
      },
    ],
  },
};

const isChannel = (c: Channel | { wildcardOf: SubjectKey; subject?: string }): c is Channel => 'id' in c;
export const channels = (): Channel[] => [
  ...Object.values(subjectChannels).filter(isChannel),
  ...Object.values(bucketChannels),
];

/** The subjects of conventions that are wildcards, with the channel each covers. */
export const wildcards = (): { subject: string; channel: string }[] =>
  Object.entries(subjectChannels).flatMap(([key, c]) => {
    if (isChannel(c)) return [];
    const target = subjectChannels[c.wildcardOf];
    const own = subjects[key as SubjectKey];
    const subject = 'subject' in c ? c.subject : typeof own === 'string' ? own : undefined;
    if (subject === undefined)
      throw new Error(`the wildcard ${key} is built from parameters: give its subject`);
    return isChannel(target) ? [{ subject: address(subject), channel: target.id }] : [];
  });

const traits: Record<Trait, { name: string; description: string; headers: Record<string, string> }> = {
  signed: {
    name: 'signed',
    description:
      'Signed by the publishing identity (docs/security.md): its public key and an ed25519 signature over utf8(subject) + "\\n" + body. Absent only with HAUL_INSECURE=1.',
    headers: {
      [signatureHeaders.signer]: 'The signer’s public key (nkey, starts with U).',
      [signatureHeaders.signature]:
        'base64url ed25519 signature over utf8(subject) + "\\n" + the body bytes.',
    },
  },
  deduplicated: {
    name: 'deduplicated',
    description: `JetStream drops a repeated message id within ${limits.duplicateWindowMs} ms.`,
    headers: { 'Nats-Msg-Id': 'The commandId of a command, the eventId of an event.' },
  },
  appended: {
    name: 'appended',
    description: 'Appended with compare-and-set on the migration’s subject.',
    headers: {
      'Nats-Expected-Last-Subject-Sequence':
        'The last stream sequence of the subject the writer folded; another writer first makes the append fail.',
    },
  },
};

/** The AsyncAPI document as an object. */
export function buildAsyncApi(docs: SchemaDocument[] = readSchemaDocuments()): Record<string, unknown> {
  const byId = new Map(docs.map((d) => [d.$id, d]));
  const doc = (name: SchemaName): SchemaDocument => {
    const d = byId.get(schemaIds[name]);
    if (!d) throw new Error(`no schema file has the $id of ${name}`);
    return d;
  };
  // Every message schema once, refs made local to components.schemas (the bundle the TypeScript types come from);
  // the services' settings schemas are not messages.
  const messageDocs = docs.filter((d) => !isSettingsSchema(d.$id));
  const bundled = JSON.stringify((bundleForTypes(messageDocs) as { $defs: unknown }).$defs).replaceAll(
    '"#/$defs/',
    '"#/components/schemas/',
  );
  const used = new Set(channels().flatMap((c) => [...c.messages, ...(c.reply ? [c.reply] : [])]));
  const messages = Object.fromEntries(
    [...used].sort().map((name) => {
      const d = doc(name);
      const traitsOf = channels().find((c) => c.messages.includes(name))?.traits ?? [];
      return [
        name,
        {
          name: d.title,
          title: d.title,
          summary: typeof d['description'] === 'string' ? d['description'] : d.title,
          contentType: 'application/json',
          payload: { $ref: `#/components/schemas/${d.title}` },
          ...(traitsOf.length
            ? { traits: traitsOf.map((t) => ({ $ref: `#/components/messageTraits/${t}` })) }
            : {}),
        },
      ];
    }),
  );
  const out: Record<string, Record<string, unknown>> = { channels: {}, operations: {} };
  for (const c of channels()) {
    const params = [...(c.address ?? '').matchAll(/\{([A-Za-z]+)\}/g)].map((m) => m[1]!);
    out['channels']![c.id] = {
      address: c.address,
      title: c.title,
      description: c.description,
      messages: Object.fromEntries(c.messages.map((m) => [m, { $ref: `#/components/messages/${m}` }])),
      ...(params.length
        ? { parameters: Object.fromEntries(params.map((p) => [p, { $ref: `#/components/parameters/${p}` }])) }
        : {}),
    };
    if (c.reply)
      out['channels']![`${c.id}Reply`] = {
        address: null,
        title: `${c.title} (reply)`,
        description: 'The requester’s inbox (the reply subject of the request).',
        messages: { [c.reply]: { $ref: `#/components/messages/${c.reply}` } },
      };
    for (const o of c.operations)
      out['operations']![o.id] = {
        action: o.action,
        channel: { $ref: `#/channels/${c.id}` },
        summary: o.summary,
        messages: c.messages.map((m) => ({ $ref: `#/channels/${c.id}/messages/${m}` })),
        ...(c.reply
          ? {
              reply: {
                channel: { $ref: `#/channels/${c.id}Reply` },
                messages: [{ $ref: `#/channels/${c.id}Reply/messages/${c.reply}` }],
              },
            }
          : {}),
      };
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'haul',
      version: '0.1.0',
      description:
        'Live migration of OpenVZ/Virtuozzo containers on NATS JetStream: every subject of the coordinator, node agents and image streamers. Generated by `npm run gen:asyncapi` from packages/bus/src/conventions.ts (subjects) and schemas/json (payloads); do not edit.',
    },
    defaultContentType: 'application/json',
    servers: {
      nats: {
        host: 'localhost:4222',
        protocol: 'nats',
        description: 'Any server of the NATS cluster (HAUL_NATS_URL), with JetStream.',
      },
    },
    channels: out['channels'],
    operations: out['operations'],
    components: {
      schemas: JSON.parse(bundled) as unknown,
      messages,
      parameters,
      messageTraits: Object.fromEntries(
        Object.entries(traits).map(([k, t]) => [
          k,
          {
            name: t.name,
            description: t.description,
            headers: {
              type: 'object',
              properties: Object.fromEntries(
                Object.entries(t.headers).map(([h, d]) => [h, { type: 'string', description: d }]),
              ),
            },
          },
        ]),
      ),
    },
  };
}

async function pretty(text: string, parser: 'yaml' | 'markdown'): Promise<string> {
  const options = (await resolveConfig(asyncApiPath)) ?? {};
  return format(text, { ...options, parser });
}

/** docs/asyncapi.yaml, as committed. */
export async function renderAsyncApi(): Promise<string> {
  const header =
    '# Generated by `npm run gen:asyncapi` from packages/bus conventions and schemas/json. Do not edit.\n';
  return pretty(header + dump(buildAsyncApi(), { lineWidth: -1, noRefs: true, sortKeys: false }), 'yaml');
}

/** docs/asyncapi.md: the channels, operations and messages as tables, linked to their schema files. */
export async function renderAsyncApiMarkdown(): Promise<string> {
  const schemaLink = (name: SchemaName) => `[${name}](../schemas/json/${basename(schemaIds[name])})`;
  const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [
    '<!-- Generated by `npm run gen:asyncapi` from packages/bus conventions and schemas/json. Do not edit. -->',
    '',
    '# The bus contract (AsyncAPI 3.0)',
    '',
    'Every subject haul uses, generated with its machine-readable twin [asyncapi.yaml](asyncapi.yaml) (checked by',
    '`@asyncapi/parser` in a test). Payloads are the JSON Schemas in [schemas/json](../schemas/json), the source of',
    'truth. `{name}` in a subject is a parameter.',
    '',
    '## Channels',
    '',
    '| channel | subject | messages | reply | what |',
    '| --- | --- | --- | --- | --- |',
    ...channels().map(
      (c) =>
        `| ${c.id} | \`${c.address}\` | ${c.messages.map(schemaLink).join(', ') || '—'} | ${c.reply ? schemaLink(c.reply) : '—'} | ${cell(c.description)} |`,
    ),
    '',
    'Wildcards in conventions (consumer filters, permissions): ' +
      wildcards()
        .map((w) => `\`${w.subject}\` covers ${w.channel}`)
        .join('; ') +
      '.',
    '',
    '## Operations',
    '',
    '| operation | action | channel | who |',
    '| --- | --- | --- | --- |',
    ...channels().flatMap((c) =>
      c.operations.map((o) => `| ${o.id} | ${o.action} | ${c.id} | ${cell(o.summary)} |`),
    ),
    '',
    '## Headers',
    '',
    '| trait | header | meaning | on |',
    '| --- | --- | --- | --- |',
    ...Object.entries(traits).flatMap(([k, t]) =>
      Object.entries(t.headers).map(
        ([h, d]) =>
          `| ${k} | \`${h}\` | ${cell(d)} | ${channels()
            .filter((c) => c.traits?.includes(k as Trait))
            .map((c) => c.id)
            .join(', ')} |`,
      ),
    ),
    '',
  ];
  return pretty(lines.join('\n'), 'markdown');
}

import { createValidators, type MigrateRequest, type Validators } from '@haul/schemas';
import migrateRequestSchema from '../../../../schemas/json/migrate-request.schema.json' with { type: 'json' };
import type { Args } from '../args.ts';
import { jsonFlag, timeoutFlag, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';
import { watchMigration } from '../watch.ts';
import { showCheck } from '../check-view.ts';

/** "1-9": the range the request's schema allows a numeric field, for a flag's help (the schema is its one place). */
export function rangeOf(
  field: 'maxIterations' | 'maxDowntimeMs' | 'bandwidthLimitMBps' | 'frozenLeaseMs',
): string {
  const { minimum, maximum } = migrateRequestSchema.properties[field];
  return `${minimum}-${maximum}`;
}

export const migrate: Command = {
  name: 'migrate',
  summary: 'start a migration and show its progress until it ends',
  description: `Ask the coordinator to move a CT from one node to another (haul.api.migrate), then follow its event log
and show its progress until it completes, rolls back or gets stuck. The exit code says which (6: it completed
but its downtime exceeded --max-downtime-ms). On a terminal one status line rewrites itself: phase, iteration,
transfer %, rate and ETA, a frozen timer while the CT is frozen, the running step; piped, plain lines.
Ctrl-C stops following, not the migration: haul wait ID re-attaches. The same --request-id always names the
same migration: running the command again re-attaches to it.`,
  positionals: [],
  flags: {
    ct: { kind: 'string', value: 'ID', help: 'the CT to move', required: true },
    from: { kind: 'string', value: 'NODE', help: 'the node it runs on', required: true },
    to: { kind: 'string', value: 'NODE', help: 'the node to move it to', required: true },
    mode: {
      kind: 'string',
      value: 'MODE',
      help: 'live (pre-dump, freeze, restore) or restart (stop, copy, start)',
      choices: ['live', 'restart'],
      default: 'live',
    },
    'shared-disk': {
      kind: 'string',
      value: 'PATH',
      help: 'a disk of the CT on shared storage (DiskDescriptor.xml, its folder or a delta); repeat per disk',
      multiple: true,
    },
    'pre-dump': {
      kind: 'string',
      value: 'WHEN',
      help: 'pre-dump iterations before the freeze',
      choices: ['on', 'off', 'auto'],
      default: 'auto',
    },
    'max-iterations': {
      kind: 'int',
      value: 'N',
      help: `at most N pre-dumps (${rangeOf('maxIterations')})`,
      default: '9',
    },
    'max-downtime-ms': {
      kind: 'int',
      value: 'MS',
      help: `downtime budget: iterate until the predicted freeze fits (${rangeOf('maxDowntimeMs')})`,
      default: "none (P.Haul's rules)",
    },
    'downtime-policy': {
      kind: 'string',
      value: 'POLICY',
      help: 'when the budget never fits: abort (roll back) or proceed',
      choices: ['abort', 'proceed'],
      default: 'abort',
    },
    bandwidth: {
      kind: 'number',
      value: 'MBPS',
      help: `cap image streaming at MBPS MB/s (${rangeOf('bandwidthLimitMBps')})`,
      default: "none (the node's cap)",
    },
    'frozen-lease-ms': {
      kind: 'int',
      value: 'MS',
      help: `how long the source keeps the CT frozen without a decision (${rangeOf('frozenLeaseMs')})`,
      default: "the coordinator's (60000)",
    },
    'skip-cpu-check': { kind: 'boolean', help: 'do not compare the CPU flags of the two nodes' },
    'request-id': {
      kind: 'string',
      value: 'ID',
      help: 'idempotency key: the same id is the same migration',
      default: 'cli-<time>',
    },
    detach: {
      kind: 'boolean',
      short: 'd',
      help: 'print the migration id once accepted and exit 0 (follow it later with haul wait ID)',
    },
    check: {
      kind: 'boolean',
      help: 'only say whether it would work, what it would copy and the downtime to expect; change nothing',
    },
    reason: { kind: 'string', value: 'TEXT', help: 'why (kept with the migration, shown by haul status)' },
    ...timeoutFlag,
    ...jsonFlag,
  },
  examples: [
    'haul migrate --ct 101 --from node-a --to node-b --shared-disk /shared/ct101',
    'haul migrate --ct 101 --from node-a --to node-b --max-downtime-ms 500 --timeout 10m',
    'id=$(haul migrate --ct 101 --from node-a --to node-b --detach) && haul wait "$id" --timeout 10m',
    'haul migrate --ct 101 --from node-a --to node-b --check   # exit 0: it would work; 4: it would not',
  ],
  exits: ['completed', 'overBudget', 'rolledBack', 'rejected', 'stuck', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const req = checkedRequest(requestOf(ctx.args), 'migrate');
    if (ctx.args.bool('check')) return showCheck(ctx, await (await ctx.api()).check(req));
    const reply = await (await ctx.api()).migrate(req);
    if (!reply.ok) {
      const field = reply.error.field ? ` (field ${reply.error.field})` : '';
      ctx.say(`haul: rejected: ${reply.error.code}${field}: ${reply.error.message}`);
      return 'rejected';
    }
    if (ctx.json) ctx.out.json(reply);
    else if (ctx.args.bool('detach')) {
      // The id alone on stdout, for id=$(haul migrate … --detach).
      ctx.out.line(reply.migrationId);
      ctx.say(`haul: follow it with: haul wait ${reply.migrationId}`);
    } else ctx.out.line(`migration ${reply.migrationId}${reply.duplicate ? ' (already requested)' : ''}`);
    if (ctx.args.bool('detach')) return 'completed';
    return watchMigration(ctx, reply.migrationId, ctx.args.ms('timeout'));
  },
};

/** The request the flags describe (checkedRequest checks it). */
export function requestOf(a: Args): MigrateRequest {
  const req: MigrateRequest = {
    requestId: a.str('request-id') ?? `cli-${Date.now().toString(36)}`,
    ctid: a.str('ct')!,
    source: a.str('from')!,
    target: a.str('to')!,
  };
  const mode = a.str('mode');
  if (mode) req.mode = mode as NonNullable<MigrateRequest['mode']>;
  const preDump = a.str('pre-dump');
  if (preDump) req.preDump = preDump as NonNullable<MigrateRequest['preDump']>;
  const policy = a.str('downtime-policy');
  if (policy) req.downtimePolicy = policy as NonNullable<MigrateRequest['downtimePolicy']>;
  const nums = [
    ['max-iterations', 'maxIterations'],
    ['max-downtime-ms', 'maxDowntimeMs'],
    ['bandwidth', 'bandwidthLimitMBps'],
    ['frozen-lease-ms', 'frozenLeaseMs'],
  ] as const;
  for (const [flag, field] of nums) {
    const v = a.num(flag);
    if (v !== undefined) req[field] = v;
  }
  if (a.has('shared-disk')) req.sharedDisks = a.list('shared-disk');
  if (a.bool('skip-cpu-check')) req.skipCpuCheck = true;
  const reason = a.str('reason');
  if (reason !== undefined) req.reason = reason;
  return req;
}

/** The flag that sets each field of a migrate request, as `haul migrate` names them. */
export const flagOfField: Readonly<Record<string, string>> = {
  requestId: '--request-id',
  ctid: '--ct',
  source: '--from',
  target: '--to',
  mode: '--mode',
  sharedDisks: '--shared-disk',
  preDump: '--pre-dump',
  maxIterations: '--max-iterations',
  maxDowntimeMs: '--max-downtime-ms',
  downtimePolicy: '--downtime-policy',
  bandwidthLimitMBps: '--bandwidth',
  frozenLeaseMs: '--frozen-lease-ms',
  reason: '--reason',
};

let validators: Validators | undefined;

/**
 * A request checked against its schema before anything is sent, as the coordinator checks it: the ranges and forms
 * of its fields are defined once, in the schema (schemas/json/migrate-request.schema.json). A value it refuses is a
 * usage error that names the flag and the value given, not a refusal of the API after a round trip.
 */
export function checkedRequest(
  req: MigrateRequest,
  command: string,
  flags: Readonly<Record<string, string>> = flagOfField,
): MigrateRequest {
  const v = (validators ??= createValidators()).validate<MigrateRequest>('migrateRequest', req);
  if (v.ok) return v.value;
  const path = v.error.field.split('.');
  const flag = flags[path[0]!] ?? `the request's ${v.error.field}`;
  let given: unknown = req;
  for (const p of path) given = (given as Record<string, unknown> | undefined)?.[p];
  const got = given === undefined || typeof given === 'object' ? '' : ` (got ${JSON.stringify(given)})`;
  throw new UsageError(`${flag}: ${v.error.detail ?? v.error.message}${got}`, command);
}

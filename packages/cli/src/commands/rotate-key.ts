import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { retirementProblem, retryTransient, streams } from '@haul/bus';
import { closest } from '../args.ts';
import { jsonFlag, type Command, type Context } from '../command.ts';
import { CliError, UsageError } from '../errors.ts';
import { readSecrets, rotateKey, type SecretsFolder } from '../rotate-key.ts';
import { secretsFiles } from '../secrets-dir.ts';

const name = 'rotate-key';

/** The last sequence of the event stream: every event stored so far (what the retired key may still vouch for). */
async function lastEventSeq(nc: NatsConnection): Promise<number> {
  const jsm = await retryTransient(() => jetstreamManager(nc));
  return (await retryTransient(() => jsm.streams.info(streams.events))).state.last_seq;
}

/** The secrets folder: --dir, which must be a folder (what is in it is checked as it is read). */
async function dirOf(ctx: Context): Promise<string> {
  const dir = resolve(ctx.args.str('dir')!);
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`--dir: ${dir} is not a folder`, name);
  return dir;
}

/** The identity to rotate, by name: one of DIR's, or a usage error naming --identity and the closest name. */
function identityOf(s: SecretsFolder, wanted: string): string {
  const names = s.registry.identities.map((i) => i.name);
  if (names.includes(wanted)) return wanted;
  const near = closest(wanted, names);
  throw new UsageError(
    `--identity: no identity ${JSON.stringify(wanted)} in ${join(s.dir, secretsFiles.registry)}${near ? ` (did you mean ${near}?)` : ''}`,
    name,
  );
}

/** N, and the warning to print when --events-up-to N could not be checked against the stream. */
type EventsUpTo = { n: number; warning?: string };

/**
 * Up to which event sequence the old key is believed: --events-up-to, else the stream's last sequence now. A given
 * N is checked against the stream whenever NATS can be reached (connecting as without the flag): one above the
 * stream's last sequence would let the retired key vouch for events not yet written, so it is refused. When NATS
 * cannot be reached (the flag is how the command runs offline), N is taken as given, with a warning naming it.
 */
async function eventsUpTo(ctx: Context, s: SecretsFolder, identity: string): Promise<EventsUpTo> {
  const given = ctx.args.num('events-up-to');
  if (given === undefined) {
    const n = await lastEventSeq(await ctx.nc());
    const problem = retirementProblem(s.registry, identity, n);
    if (problem === undefined) return { n };
    throw new CliError(
      'error',
      `the event stream's last sequence is ${n}: ${problem} (is this the cluster's NATS?)`,
    );
  }
  const problem = retirementProblem(s.registry, identity, given);
  if (problem !== undefined) throw new UsageError(`--events-up-to: ${problem}`, name);
  let nc: NatsConnection;
  try {
    nc = await ctx.nc();
  } catch (err) {
    return {
      n: given,
      warning:
        `NATS not reachable (${(err as Error).message}), so --events-up-to ${given} was not checked against the ` +
        `event stream: the retired key vouches for every event stored up to sequence ${given}; if the stream ` +
        `holds fewer, later events signed with it will be believed too`,
    };
  }
  const last = await lastEventSeq(nc);
  if (given > last)
    throw new UsageError(
      `--events-up-to: ${given} is beyond the event stream's last sequence, ${last}: the retired key would vouch ` +
        'for events not yet written (give at most the last sequence, or leave the flag out to use it)',
      name,
    );
  return { n: given };
}

export const rotateKeyCommand: Command = {
  name,
  summary: 'give one identity a new key; its old key vouches only for the events already stored',
  description: `Rotate one identity's nkey in a secrets folder made by haul init-cluster (docs/security.md, "Rotating
keys"). Writes a new seed DIR/<identity>.nk (mode 0600, never printed), moves the old public key into the identity's
retiredKeys in DIR/identities.json with eventsUpTo = N, and renders DIR/nats-server.conf again with the new key
alone. In a folder made with --auth jwt it writes DIR/<identity>.creds instead (a new user JWT, signed with
DIR/account.nk), and the old key is revoked in the haul account's JWT (signed with DIR/operator.nk); in operator mode
nats-server closes every client connection at a reload, and the services reconnect. Readers with the new identities.json still believe the events the old key signed up to event sequence N (so
the history stays readable); nothing else: no later event, command or request. Without --events-up-to, N is the
event stream's last sequence, read from NATS (HAUL_NATS_URL or --nats, as the identity whose seed
HAUL_NKEY_SEED_FILE or HAUL_CREDS_FILE names, with the TLS settings of every command). With --events-up-to N, N may not exceed that
last sequence when NATS can be reached; when it cannot (rotating offline), N is used as given, with a warning.
Stop the identity's service before, so that the old key signs nothing after N. Then: nats-server --signal reload,
identities.json to every host and a restart of the other services, and the rotated service started with its new
seed.`,
  positionals: [],
  flags: {
    dir: {
      kind: 'string',
      value: 'DIR',
      help: 'the secrets folder (haul init-cluster --out DIR): identities.json, nats-server.conf, the seeds',
      required: true,
    },
    identity: {
      kind: 'string',
      value: 'NAME',
      help: 'the identity to rotate: coordinator, agent@<node>, streamer@<node>, scheduler or ops',
      required: true,
    },
    'events-up-to': {
      kind: 'int',
      value: 'N',
      help: "the old key vouches for events stored up to sequence N: at most the event stream's last sequence (checked if NATS answers; offline, a warning)",
      default: "the event stream's last sequence, read from NATS",
    },
    ...jsonFlag,
  },
  examples: [
    'haul rotate-key --dir /etc/haul/secrets --identity agent@node-a',
    'haul rotate-key --dir ./secrets --identity streamer@node-b --events-up-to 18230',
  ],
  exits: ['completed', 'noCoordinator'],
  async run(ctx) {
    const secrets = await readSecrets(await dirOf(ctx));
    const identity = identityOf(secrets, ctx.args.str('identity')!);
    const { n, warning } = await eventsUpTo(ctx, secrets, identity);
    if (warning !== undefined) ctx.say(`haul rotate-key: warning: ${warning}`);
    const r = await rotateKey(secrets, identity, n);
    if (ctx.json) {
      ctx.out.json({ ...r, dir: secrets.dir, ...(warning !== undefined ? { warning } : {}) });
      return 'completed';
    }
    ctx.out.line(`${identity}: new key ${r.publicKey} (in ${join(secrets.dir, r.wrote[0]!)})`);
    ctx.out.line(`  retired ${r.retired.publicKey}: believed for events up to sequence ${n}, nothing else`);
    ctx.out.line(`  wrote ${r.wrote.join(', ')} in ${secrets.dir}`);
    ctx.out.line(
      'Next: nats-server --signal reload; identities.json to every host and restart the other services;',
    );
    ctx.out.line(`      start ${identity} with its new seed (docs/security.md, "Rotating keys").`);
    return 'completed';
  },
};

import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { retirementProblem, retryTransient, streams } from '@haul/bus';
import { closest } from '../args.ts';
import { jsonFlag, type Command, type Context } from '../command.ts';
import { CliError, UsageError } from '../errors.ts';
import { readSecrets, rotateKey, secretsFiles, type SecretsFolder } from '../rotate-key.ts';

const name = 'rotate-key';

/** The last sequence of the event stream: every event stored so far (what the retired key may still vouch for). */
async function lastEventSeq(ctx: Context): Promise<number> {
  const jsm = await retryTransient(async () => jetstreamManager(await ctx.nc()));
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

/** Up to which event sequence the old key is believed: --events-up-to, else the stream's last sequence now. */
async function eventsUpTo(ctx: Context, s: SecretsFolder, identity: string): Promise<number> {
  const given = ctx.args.num('events-up-to');
  const n = given ?? (await lastEventSeq(ctx));
  const problem = retirementProblem(s.registry, identity, n);
  if (problem === undefined) return n;
  if (given !== undefined) throw new UsageError(`--events-up-to: ${problem}`, name);
  throw new CliError(
    'error',
    `the event stream's last sequence is ${n}: ${problem} (is this the cluster's NATS?)`,
  );
}

export const rotateKeyCommand: Command = {
  name,
  summary: 'give one identity a new key; its old key vouches only for the events already stored',
  description: `Rotate one identity's nkey in a secrets folder made by haul init-cluster (docs/security.md, "Rotating
keys"). Writes a new seed DIR/<identity>.nk (mode 0600, never printed), moves the old public key into the identity's
retiredKeys in DIR/identities.json with eventsUpTo = N, and renders DIR/nats-server.conf again with the new key
alone. Readers with the new identities.json still believe the events the old key signed up to event sequence N (so
the history stays readable); nothing else: no later event, command or request. Without --events-up-to, N is the
event stream's last sequence, read from NATS (HAUL_NATS_URL or --nats, as the ops identity: HAUL_NKEY_SEED_FILE and
the TLS settings of every command); with it, nothing connects. Stop the identity's service before, so that the old
key signs nothing after N. Then: nats-server --signal reload, identities.json to every host and a restart of the
other services, and the rotated service started with its new seed.`,
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
      help: 'the old key vouches for events stored up to sequence N; never more than the stream holds now',
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
    const n = await eventsUpTo(ctx, secrets, identity);
    const r = await rotateKey(secrets, identity, n);
    if (ctx.json) {
      ctx.out.json({ ...r, dir: secrets.dir });
      return 'completed';
    }
    ctx.out.line(
      `${identity}: new key ${r.publicKey} (seed ${join(secrets.dir, secretsFiles.seed(identity))})`,
    );
    ctx.out.line(`  retired ${r.retired.publicKey}: believed for events up to sequence ${n}, nothing else`);
    ctx.out.line(`  wrote ${r.wrote.join(', ')} in ${secrets.dir}`);
    ctx.out.line(
      'Next: nats-server --signal reload; identities.json to every host and restart the other services;',
    );
    ctx.out.line(`      start ${identity} with its new seed (docs/security.md, "Rotating keys").`);
    return 'completed';
  },
};

import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { clusterIdentities, subjectToken, type IdentitiesFile } from '@haul/bus';
import { parseCommandLine, type FlagSpecs } from './args.ts';
import { makeClusterTls, OpensslError, sanEntry, type ClusterTls } from './cluster-tls.ts';
import { UsageError } from './errors.ts';
import { exitCode } from './exit-codes.ts';
import { flagLines, helpWidth, paragraph, usageOf } from './help.ts';
import {
  accountJwts,
  clusterAuths,
  createOperatorKeys,
  userCreds,
  writeOperatorFiles,
  type ClusterAuth,
  type OperatorKeys,
} from './operator-mode.ts';
import { secretsFiles, secretsModes, serverConfigOf, writeSecretsFile } from './secrets-dir.ts';

/** The flags of `haul init-cluster`: what its parser accepts and its help shows. */
export const initFlags: FlagSpecs = {
  nodes: {
    kind: 'string',
    value: 'NODE[,NODE...]',
    help: "the cluster's nodes: each gets an agent@<node> and a streamer@<node> identity",
    multiple: true,
    required: true,
  },
  out: {
    kind: 'string',
    value: 'DIR',
    help: 'where to write; an existing DIR must be empty unless --force',
    required: true,
  },
  cluster: { kind: 'string', value: 'NAME', help: "the cluster's name", default: 'haul' },
  host: {
    kind: 'string',
    value: 'HOST',
    help: 'a host name or IP address clients use to reach nats-server; localhost and 127.0.0.1 are always in its certificate',
    multiple: true,
  },
  listen: { kind: 'string', value: 'HOST:PORT', help: 'where nats-server listens', default: '0.0.0.0:4222' },
  'store-dir': {
    kind: 'string',
    value: 'PATH',
    help: "nats-server's JetStream store",
    default: '/var/lib/haul/nats',
  },
  'server-dir': {
    kind: 'string',
    value: 'PATH',
    help: "where nats-server will read DIR's files from",
    default: 'DIR, as an absolute path',
  },
  auth: {
    kind: 'string',
    value: 'MODE',
    help: 'nkey: nkey users in nats-server.conf; jwt: NATS operator mode, one .creds file per identity',
    choices: clusterAuths,
    default: 'nkey',
  },
  force: { kind: 'boolean', help: 'write into a non-empty DIR, replacing the files of the same names' },
  help: { kind: 'boolean', short: 'h', help: 'show this help' },
};

/** `haul init-cluster --help`, in lines of at most `width`. */
export function initClusterHelp(width = helpWidth(Infinity)): string {
  return [
    ...paragraph('haul init-cluster: the identities, permissions and certificates of a haul cluster.', width),
    '',
    ...paragraph(`Usage: ${usageOf({ name: 'init-cluster', flags: initFlags, positionals: [] })}`, width),
    '',
    'Flags:',
    ...flagLines(initFlags, width),
    '',
    ...paragraph(
      `Writes: <name>.nk (the nkey seed of each identity: coordinator, agent@<node>, streamer@<node>, scheduler, ops;
mode 0600), <name>-cert.pem + <name>-key.pem (its TLS client certificate; a streamer's also serves its data
connections), identities.json (the public keys), ca.pem + ca-key.pem (the cluster CA; keep its key offline),
server-cert.pem + server-key.pem, nats-server.conf (mutual TLS: every client presents its certificate). Secrets are
never printed.`,
      width,
    ),
    '',
    ...paragraph(
      `With --auth jwt, for a NATS run in operator mode: <name>.creds (the identity's user JWT, with its permissions,
and its seed; mode 0600) instead of <name>.nk, operator.nk + account.nk (the operator's and the haul account's seeds;
keep them offline with ca-key.pem), operator.jwt, and a nats-server.conf that trusts the operator and preloads the
accounts.`,
      width,
    ),
    '',
    ...paragraph(
      'A service or the CLI reads HAUL_NKEY_SEED_FILE=DIR/<name>.nk (or HAUL_CREDS_FILE=DIR/<name>.creds), ' +
        'HAUL_TLS_CA_FILE=DIR/ca.pem, HAUL_NATS_TLS_CERT_FILE=DIR/<name>-cert.pem and ' +
        'HAUL_NATS_TLS_KEY_FILE=DIR/<name>-key.pem (docs/security.md).',
      width,
    ),
    '',
    ...paragraph(
      `Exit: ${initClusterExit.ok} written, ${initClusterExit.usage} usage, ${initClusterExit.notEmpty} DIR exists and is not empty (use --force), ${initClusterExit.openssl} openssl missing or failing, ${initClusterExit.failed} other errors.`,
      width,
    ),
  ].join('\n');
}

/** Its exit codes, from the CLI's one registry (exit-codes.ts). */
export const initClusterExit = {
  ok: exitCode('completed'),
  failed: exitCode('error'),
  usage: exitCode('usage'),
  notEmpty: exitCode('outputNotEmpty'),
  openssl: exitCode('opensslFailed'),
} as const;

export type InitClusterOptions = {
  nodes: string[];
  out: string;
  cluster?: string;
  hosts?: string[];
  listen?: string;
  storeDir?: string;
  serverDir?: string;
  /** nkey users (the default) or operator mode with .creds files. */
  auth?: ClusterAuth;
  force?: boolean;
};

/** DIR exists and holds files, and --force was not given. */
export class OutputNotEmptyError extends Error {
  constructor(dir: string) {
    super(`${dir} exists and is not empty: choose another folder, or --force to write into it`);
    this.name = 'OutputNotEmptyError';
  }
}

/** Options that cannot be used as given. */
export class InitUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InitUsageError';
  }
}

const { secret, open } = secretsModes;

async function prepareOut(dir: string, force: boolean): Promise<void> {
  const st = await stat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) throw new OutputNotEmptyError(dir);
  if (st && !force && (await readdir(dir)).length > 0) throw new OutputNotEmptyError(dir);
  if (!st) await mkdir(dir, { recursive: true, mode: 0o700 });
}

function checkOptions(o: InitClusterOptions): void {
  if (o.nodes.length === 0) throw new InitUsageError('--nodes needs at least one node');
  for (const n of o.nodes) tokenOr(n, '--nodes');
  if (new Set(o.nodes).size !== o.nodes.length) throw new InitUsageError('--nodes names a node twice');
  tokenOr(o.cluster ?? 'haul', '--cluster');
  for (const h of o.hosts ?? []) {
    try {
      sanEntry(h);
    } catch (err) {
      throw new InitUsageError(`--host: ${(err as Error).message}`);
    }
  }
  const port = o.listen === undefined ? undefined : /^[^\s"]+:([0-9]{1,5})$/.exec(o.listen)?.[1];
  if (o.listen !== undefined && (port === undefined || Number(port) < 1 || Number(port) > 65535))
    throw new InitUsageError(
      `--listen must be HOST:PORT, the port from 1 to 65535 (got ${JSON.stringify(o.listen)})`,
    );
}

function tokenOr(s: string, flag: string): void {
  try {
    subjectToken(s);
  } catch {
    throw new InitUsageError(`${flag}: ${JSON.stringify(s)} is not a name (letters, digits, - and _)`);
  }
}

/** Every file is written with exactly its mode: one replaced with --force keeps no older, wider mode. */
function writeTls(dir: string, tls: ClusterTls): void {
  writeSecretsFile(join(dir, 'ca.pem'), tls.ca.cert, open);
  writeSecretsFile(join(dir, 'ca-key.pem'), tls.ca.key, secret);
  writeSecretsFile(join(dir, 'server-cert.pem'), tls.server.cert, open);
  writeSecretsFile(join(dir, 'server-key.pem'), tls.server.key, secret);
  for (const [name, pem] of tls.identities) {
    writeSecretsFile(join(dir, `${name}-cert.pem`), pem.cert, open);
    writeSecretsFile(join(dir, `${name}-key.pem`), pem.key, secret);
  }
}

/**
 * One nkey per identity, its public key into the registry, its seed to DIR/<name>.nk (0600), or in operator mode to
 * DIR/<name>.creds with its user JWT.
 */
async function writeIdentities(
  dir: string,
  cluster: string,
  nodes: string[],
  operator: OperatorKeys | undefined,
): Promise<IdentitiesFile> {
  const registry: IdentitiesFile = { cluster, identities: [] };
  for (const id of clusterIdentities(nodes)) {
    const kp = createUser();
    if (operator)
      writeSecretsFile(join(dir, secretsFiles.creds(id.name)), await userCreds(operator, id, kp), secret);
    else
      writeSecretsFile(
        join(dir, secretsFiles.seed(id.name)),
        `${new TextDecoder().decode(kp.getSeed())}\n`,
        secret,
      );
    registry.identities.push({ ...id, publicKey: kp.getPublicKey() });
  }
  writeSecretsFile(join(dir, secretsFiles.registry), `${JSON.stringify(registry, null, 2)}\n`, open);
  return registry;
}

/** Generate a cluster's secrets folder (see initClusterHelp). Returns the public registry. */
export async function initCluster(o: InitClusterOptions): Promise<IdentitiesFile> {
  checkOptions(o);
  const cluster = o.cluster ?? 'haul';
  const dir = resolve(o.out);
  await prepareOut(dir, o.force ?? false);
  const work = await mkdtemp(join(tmpdir(), 'haul-init-'));
  try {
    writeTls(dir, await makeClusterTls(work, cluster, o.hosts ?? [], clusterIdentities(o.nodes)));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const op = o.auth === 'jwt' ? await createOperatorKeys(cluster) : undefined;
  if (op) writeOperatorFiles(dir, op.keys, op.operatorJwt);
  const registry = await writeIdentities(dir, cluster, o.nodes, op?.keys);
  const serverDir = o.serverDir ?? dir;
  const settings = {
    listen: o.listen ?? '0.0.0.0:4222',
    storeDir: o.storeDir ?? '/var/lib/haul/nats',
    tls: {
      certFile: join(serverDir, 'server-cert.pem'),
      keyFile: join(serverDir, 'server-key.pem'),
      caFile: join(serverDir, 'ca.pem'),
    },
  };
  const conf = op
    ? serverConfigOf(registry, settings, {
        operatorJwtFile: join(serverDir, secretsFiles.operatorJwt),
        ...(await accountJwts(op.keys, [])),
      })
    : serverConfigOf(registry, settings);
  writeSecretsFile(join(dir, secretsFiles.serverConfig), conf, open);
  return registry;
}

/**
 * The options of a command line, parsed as every other command's (args.ts): an unknown flag is refused with the
 * closest known one suggested, a flag with no value is refused rather than taking the next flag as its value.
 */
function parseInitArgs(argv: string[]): InitClusterOptions | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  const a = parseCommandLine('init-cluster', argv, initFlags, []);
  const o: InitClusterOptions = {
    nodes: a
      .list('nodes')
      .flatMap((v) => v.split(','))
      .filter((n) => n !== ''),
    out: a.str('out')!,
    hosts: a.list('host'),
    force: a.bool('force'),
    auth: a.str('auth') as ClusterAuth,
  };
  const cluster = a.str('cluster');
  if (cluster !== undefined) o.cluster = cluster;
  const listen = a.str('listen');
  if (listen !== undefined) o.listen = listen;
  const storeDir = a.str('store-dir');
  if (storeDir !== undefined) o.storeDir = storeDir;
  const serverDir = a.str('server-dir');
  if (serverDir !== undefined) o.serverDir = resolve(serverDir);
  return o;
}

/**
 * `haul init-cluster …`: exit codes in initClusterExit; help at `width` (helpWidth). Prints only file names and
 * public keys.
 */
export async function initClusterMain(argv: string[], width = helpWidth(Infinity)): Promise<number> {
  let o: InitClusterOptions | 'help';
  try {
    o = parseInitArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`haul init-cluster: ${err.message}\nRun 'haul init-cluster --help' for usage.`);
    return initClusterExit.usage;
  }
  if (o === 'help') {
    console.log(initClusterHelp(width));
    return initClusterExit.ok;
  }
  try {
    const registry = await initCluster(o);
    const dir = resolve(o.out);
    console.log(`cluster ${registry.cluster}: wrote ${dir}`);
    const fileOf = o.auth === 'jwt' ? secretsFiles.creds : secretsFiles.seed;
    for (const id of registry.identities)
      console.log(`  ${id.name.padEnd(24)} ${id.publicKey}  ${fileOf(id.name)}`);
    console.log(`  nats-server: nats-server -c ${join(dir, secretsFiles.serverConfig)}`);
    return initClusterExit.ok;
  } catch (err) {
    console.error(`haul init-cluster: ${(err as Error).message}`);
    if (err instanceof InitUsageError) return initClusterExit.usage;
    if (err instanceof OutputNotEmptyError) return initClusterExit.notEmpty;
    if (err instanceof OpensslError) return initClusterExit.openssl;
    return initClusterExit.failed;
  }
}

import { AuthorizationError } from '@nats-io/nats-core';
import { NatsConnectionImpl } from '@nats-io/nats-core/internal';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { BusError, BusUnavailableError } from './errors.ts';
import {
  identityEnv,
  identityFileOf,
  IdentityFileError,
  readIdentityFile,
  type IdentitySetting,
} from './identity-file.ts';
import type { NatsSettings } from '@haul/schemas';
import { inboxPrefix } from './permissions.ts';
import { ConfigError, loadSettings, removedEnv } from './settings/load.ts';
import { settingsOf } from './settings/spec.ts';
import { isTlsAlert, probeClientCertificate } from './tls-probe.ts';
import { natsAuthenticator, seedKeyOf, type SeedKey } from './trust/ed25519.ts';

export type BusConfig = {
  /** Comma-separated URLs, e.g. nats://127.0.0.1:4222,nats://127.0.0.1:4223 */
  servers: string;
  /** Connection name shown by the server (service and node). */
  name: string;
  /** A server set up with a user and password, or a token (not haul init-cluster's). */
  user?: string;
  pass?: string;
  token?: string;
  /**
   * The identity's secret (identity-file.ts): an nkey seed file (`haul init-cluster` writes DIR/<name>.nk) or a NATS
   * .creds file (`--auth jwt`: DIR/<name>.creds), by the setting that named it. Read only when connecting.
   */
  identity?: { file: string; setting: IdentitySetting };
  /** The cluster CA: the server's certificate must be signed by it (TLS is then required). */
  tlsCaFile?: string;
  /** A client certificate for a server that verifies its clients (nats-server `tls { verify: true }`). */
  tlsClient?: { certFile: string; keyFile: string };
  /** HAUL_INSECURE=1: no nkey and no TLS, whatever else is set, with a warning at every connect. */
  insecure?: boolean;
};

/** The settings of the bus connection are wrong (a file missing or unreadable, a value that means nothing). */
export class BusConfigError extends BusError {
  constructor(message: string, options?: ErrorOptions) {
    super('HAUL_BUS_CONFIG', message, false, options);
    this.name = 'BusConfigError';
  }
}

/** The settings a connection needs (service-config.schema.json; a service's config file or the environment). */
export type ConnectionSettings = {
  nats: NatsSettings;
  nkeySeedFile?: string;
  credsFile?: string;
  insecure: boolean;
};

/** The bus configuration of a service's settings: servers, identity, TLS, or a user/password or token. */
export function busConfigOf(name: string, s: ConnectionSettings): BusConfig {
  const cfg: BusConfig = { servers: s.nats.servers.join(','), name };
  if (s.nats.user !== undefined) cfg.user = s.nats.user;
  if (s.nats.password !== undefined) cfg.pass = s.nats.password;
  if (s.nats.token !== undefined) cfg.token = s.nats.token;
  try {
    const identity = identityFileOf(s);
    if (identity) cfg.identity = identity;
  } catch (err) {
    if (err instanceof IdentityFileError) throw new BusConfigError(err.message, { cause: err });
    throw err;
  }
  if (s.nats.tls?.caFile) cfg.tlsCaFile = s.nats.tls.caFile;
  if (s.nats.tls?.certFile && s.nats.tls.keyFile)
    cfg.tlsClient = { certFile: s.nats.tls.certFile, keyFile: s.nats.tls.keyFile };
  if (s.insecure) cfg.insecure = true;
  return cfg;
}

/**
 * The bus configuration from the environment alone (the CLI, tests): the services' own settings and their variables
 * (HAUL_NATS_URL, HAUL_NKEY_SEED_FILE, HAUL_TLS_CA_FILE, HAUL_INSECURE=1, …; `--help` of a service lists them).
 */
export function busConfigFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): BusConfig {
  const only = connectionEnv(env);
  try {
    return busConfigOf(
      name,
      loadSettings<ConnectionSettings>({ schema: 'coordinatorConfig', env: only }).values,
    );
  } catch (err) {
    if (err instanceof ConfigError) throw new BusConfigError(err.message, { cause: err });
    throw err;
  }
}

/** Only the variables of the connection's settings (a stray service setting in the CLI's environment is not its business). */
function connectionEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const names = settingsOf('coordinatorConfig')
    .filter((s) => s.path[0] === 'nats' || s.key in identityEnv || s.key === 'insecure')
    .flatMap((s) => (s.env ? [s.env] : []))
    .concat(Object.keys(removedEnv));
  return Object.fromEntries(names.filter((n) => env[n] !== undefined).map((n) => [n, env[n]]));
}

/**
 * How an identity logs in, and its own inbox prefix (permissions.ts allows only that inbox): the nkey of a seed file
 * answers the server's nonce; a .creds file also presents its user JWT (a server in operator mode checks it).
 */
function identityOptions(identity: NonNullable<BusConfig['identity']>): Partial<NodeConnectionOptions> {
  let secret: ReturnType<typeof readIdentityFile>;
  let key: SeedKey;
  try {
    secret = readIdentityFile(identity.file, identity.setting);
    key = seedKeyOf(new TextEncoder().encode(secret.seed));
  } catch (err) {
    const message =
      err instanceof IdentityFileError ? err.message : `${identity.file} does not hold a valid nkey seed`;
    throw new BusConfigError(message, { cause: err });
  }
  return {
    authenticator: natsAuthenticator(key, secret.jwt),
    inboxPrefix: inboxPrefix(key.publicKey),
  };
}

const insecureWarning =
  'HAUL_INSECURE=1: connecting to NATS without an identity and without TLS. Anyone on the network can read and ' +
  'forge every command and event. For debugging only.';

/** The connection options cfg asks for, trust settings included. */
export function connectionOptions(cfg: BusConfig): NodeConnectionOptions {
  const opts: NodeConnectionOptions = {
    servers: cfg.servers.split(',').map((s) => s.trim()),
    name: cfg.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    // No async stack traces on requests: every JetStream publish is a request, and capturing a stack for each one
    // cost the coordinator about a tenth of its CPU (bench:control); a failed request still says what failed.
    noAsyncTraces: true,
  };
  if (cfg.user !== undefined) opts.user = cfg.user;
  if (cfg.pass !== undefined) opts.pass = cfg.pass;
  if (cfg.token !== undefined) opts.token = cfg.token;
  if (cfg.insecure) return opts;
  if (cfg.identity !== undefined) Object.assign(opts, identityOptions(cfg.identity));
  if (cfg.tlsCaFile !== undefined || cfg.tlsClient !== undefined)
    opts.tls = {
      ...(cfg.tlsCaFile !== undefined ? { caFile: cfg.tlsCaFile } : {}),
      ...(cfg.tlsClient ?? {}),
    };
  return opts;
}

/**
 * Node's codes for a peer certificate it does not accept (unknown issuer, expired, wrong name, …); not an alert the
 * peer sent (ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: the server refused this client's certificate).
 */
const isCertificateRefusal = (code: unknown): boolean =>
  typeof code === 'string' &&
  (code.startsWith('ERR_TLS_CERT') || /CERT|SIGNATURE|ISSUER/.test(code)) &&
  !isTlsAlert(code);

/** The server refused this client's certificate, or its lack of one, with a TLS alert (`code`). */
function clientCertificateRefusal(cfg: BusConfig, code: string, cause: unknown): BusConfigError {
  const message = cfg.tlsClient
    ? `NATS at ${cfg.servers} refused the client certificate ${cfg.tlsClient.certFile} (${code}): is it signed by ` +
      'the cluster CA, and still valid? (nats.tls.certFile, HAUL_NATS_TLS_CERT_FILE)'
    : `NATS at ${cfg.servers} requires a client certificate (${code}): set nats.tls.certFile and nats.tls.keyFile ` +
      "(HAUL_NATS_TLS_CERT_FILE, HAUL_NATS_TLS_KEY_FILE) to the identity's <name>-cert.pem and <name>-key.pem from " +
      'haul init-cluster';
  return new BusConfigError(message, { cause });
}

/**
 * A first connect with TLS that ended in a reset or a TLS alert: whether the server refused this client's certificate.
 * An alert says so; a reset may have come before the alert was read (tls-probe.ts), so the first server that
 * answers is asked again with a bare handshake.
 */
async function certificateRefusal(cfg: BusConfig, err: unknown): Promise<BusConfigError | undefined> {
  if (cfg.insecure || (cfg.tlsCaFile === undefined && cfg.tlsClient === undefined)) return undefined;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (isTlsAlert(code)) return clientCertificateRefusal(cfg, code, err);
  if (code !== 'ECONNRESET' && code !== 'EPIPE') return undefined;
  const files = { ...(cfg.tlsCaFile !== undefined ? { caFile: cfg.tlsCaFile } : {}), ...cfg.tlsClient };
  for (const server of cfg.servers.split(',').map((s) => s.trim())) {
    const alert = await probeClientCertificate(server, files);
    if (alert) return clientCertificateRefusal(cfg, alert, err);
  }
  return undefined;
}

/**
 * nats.js takes a server closing the connection right after the TLS handshake for a disconnect to reconnect from, and
 * its first connect then waits out its whole timeout (20 s) to fail with "timeout": a server refusing the client's
 * certificate (TLS 1.3 tells a client so only after the handshake) would look like one that does not answer. So the
 * first connect does not reconnect, and reconnecting is switched on once connected (nats.js reads the option at each
 * disconnect).
 */
async function reconnectFromNowOn(nc: NatsConnection, reconnect: boolean): Promise<void> {
  if (nc instanceof NatsConnectionImpl) {
    nc.options.reconnect = reconnect;
    return;
  }
  await nc.close();
  throw new Error('nats.js returned a connection of another kind: cannot switch its reconnecting on');
}

/** A first connect the server or its certificate refused: the settings are wrong, retrying will not help. */
function refusal(cfg: BusConfig, err: unknown): BusConfigError | undefined {
  if (err instanceof AuthorizationError) {
    const who = cfg.identity
      ? `the identity in ${cfg.identity.file} (${cfg.identity.setting}, ${identityEnv[cfg.identity.setting]})`
      : 'a client without an identity (nkeySeedFile or credsFile)';
    return new BusConfigError(`NATS at ${cfg.servers} refused ${who}`, { cause: err });
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (!isCertificateRefusal(code)) return undefined;
  const hint = cfg.tlsCaFile
    ? `is it signed by ${cfg.tlsCaFile}, and does it name the host of HAUL_NATS_URL?`
    : 'set HAUL_TLS_CA_FILE to the cluster CA';
  return new BusConfigError(`the certificate of NATS at ${cfg.servers} was not accepted (${code}): ${hint}`, {
    cause: err,
  });
}

/**
 * Connect, reconnecting forever once connected; fail with a clear error when no server answers at first, or with a
 * BusConfigError when the server refuses the identity or the client's certificate, or its own certificate is not the
 * cluster's. In the insecure mode, warn (process warning HAUL_INSECURE on stderr) at every connect.
 */
export async function connectBus(
  cfg: BusConfig,
  extra: Partial<NodeConnectionOptions> = {},
): Promise<NatsConnection> {
  const opts = { ...connectionOptions(cfg), ...extra };
  if (cfg.insecure) process.emitWarning(insecureWarning, { code: 'HAUL_INSECURE' });
  let nc: NatsConnection;
  try {
    nc = await connect({ ...opts, reconnect: false });
  } catch (err) {
    const refused = refusal(cfg, err) ?? (await certificateRefusal(cfg, err));
    if (refused) throw refused;
    throw new BusUnavailableError(`cannot reach NATS at ${cfg.servers}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  await reconnectFromNowOn(nc, opts.reconnect ?? true);
  return nc;
}

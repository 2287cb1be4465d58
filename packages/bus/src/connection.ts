import { readFileSync } from 'node:fs';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { BusUnavailableError } from './errors.ts';

export type BusConfig = {
  /** Comma-separated URLs, e.g. nats://127.0.0.1:4222,nats://127.0.0.1:4223 */
  servers: string;
  /** Connection name shown by the server (service and node). */
  name: string;
  /** Optional credentials: a user/password or token file, never in code. */
  user?: string;
  pass?: string;
  token?: string;
};

/**
 * Read the bus configuration from the environment: HAUL_NATS_URL, and credentials from HAUL_NATS_CREDS_FILE
 * (a JSON file {"user","pass"} or {"token"}) or HAUL_NATS_USER/HAUL_NATS_PASS/HAUL_NATS_TOKEN.
 */
export function busConfigFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): BusConfig {
  const cfg: BusConfig = { servers: env['HAUL_NATS_URL'] ?? 'nats://127.0.0.1:4222', name };
  const file = env['HAUL_NATS_CREDS_FILE'];
  const creds = file ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>) : {};
  const user = creds['user'] ?? env['HAUL_NATS_USER'];
  const pass = creds['pass'] ?? env['HAUL_NATS_PASS'];
  const token = creds['token'] ?? env['HAUL_NATS_TOKEN'];
  if (user !== undefined) cfg.user = user;
  if (pass !== undefined) cfg.pass = pass;
  if (token !== undefined) cfg.token = token;
  return cfg;
}

/** Connect, reconnecting forever once connected; fail with a clear error when no server answers at first. */
export async function connectBus(
  cfg: BusConfig,
  extra: Partial<NodeConnectionOptions> = {},
): Promise<NatsConnection> {
  const opts: NodeConnectionOptions = {
    servers: cfg.servers.split(',').map((s) => s.trim()),
    name: cfg.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    ...extra,
  };
  if (cfg.user !== undefined) opts.user = cfg.user;
  if (cfg.pass !== undefined) opts.pass = cfg.pass;
  if (cfg.token !== undefined) opts.token = cfg.token;
  try {
    return await connect(opts);
  } catch (err) {
    throw new BusUnavailableError(`cannot reach NATS at ${cfg.servers}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { buckets } from './conventions.ts';
import { decodeJson, openBucket } from './kv.ts';
import type { Logger } from './logger.ts';
import { cachedSource, consumerMetrics, processMetrics, type ConsumerInfo } from './metrics.ts';

/** Where a service serves /metrics; absent when metrics are off. */
export type MetricsConfig = { host: string; port: number };

/** A metrics setting that cannot be used: the service says which and exits 2, like any other bad setting. */
export class MetricsConfigError extends Error {
  readonly code = 'HAUL_BAD_METRICS_CONFIG';
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(message);
    this.name = 'MetricsConfigError';
    this.setting = setting;
  }
}

export const metricsEnvHelp = `  HAUL_METRICS_PORT        serve Prometheus metrics on http://HOST:PORT/metrics (1-65535; unset or 0: off)
  HAUL_METRICS_HOST        address the metrics listener binds to (default 127.0.0.1; 0.0.0.0 for every address)`;

/**
 * The metrics listener from HAUL_METRICS_PORT and HAUL_METRICS_HOST. Off unless a port is set: a port open on
 * every host by default would be one more thing to firewall, and two services on one host would collide.
 */
export function metricsConfigFromEnv(env: NodeJS.ProcessEnv = process.env): MetricsConfig | undefined {
  const raw = env['HAUL_METRICS_PORT'];
  if (raw === undefined || raw === '' || raw === '0') return undefined;
  const port = Number(raw);
  if (!/^[0-9]+$/.test(raw) || port < 1 || port > 65535)
    throw new MetricsConfigError(
      'HAUL_METRICS_PORT',
      'HAUL_METRICS_PORT must be a port from 1 to 65535, or 0 (off)',
    );
  const host = env['HAUL_METRICS_HOST'] ?? '127.0.0.1';
  if (isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host))
    throw new MetricsConfigError(
      'HAUL_METRICS_HOST',
      'HAUL_METRICS_HOST must be an IP address or a host name',
    );
  return { host, port };
}

/** The metrics listener of a service's `metrics` settings: off (undefined) when the port is 0. */
export function metricsConfigOf(m: { port: number; host: string }): MetricsConfig | undefined {
  return m.port === 0 ? undefined : { host: m.host, port: m.port };
}

/**
 * Serve the registry on GET /metrics (node's http: one route needs no framework). The text is built only when
 * scraped. Resolves once listening; a port that cannot be bound rejects (the service exits).
 */
export async function serveMetrics(registry: Registry, cfg: MetricsConfig, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        log.warn({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  server.unref(); // the bus keeps a service alive, not its metrics listener
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  log.info({ host: cfg.host, port: cfg.port }, 'serving metrics on /metrics');
  return server;
}

/** The metrics settings, or exit 2 naming the bad one (before the service connects to anything). */
export function metricsConfigOrExit(
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
): MetricsConfig | undefined {
  try {
    return metricsConfigFromEnv(env);
  } catch (err) {
    if (!(err instanceof MetricsConfigError)) throw err;
    log.fatal({ [err.setting]: env[err.setting] }, err.message);
    process.exit(2);
  }
}

/** What a scrape asks of the server about one durable consumer. */
export function consumerInfoOf(nc: NatsConnection, stream: string, consumer: string) {
  return cachedSource<ConsumerInfo | undefined>(async () => {
    const jsm = await jetstreamManager(nc);
    const i = await jsm.consumers.info(stream, consumer);
    return { stream, consumer, pending: i.num_pending, ackPending: i.num_ack_pending };
  }, undefined);
}

/** When each node last beat, from the haul-nodes bucket (a node whose value is not a heartbeat is left out). */
export function heartbeatTimesOf(nc: NatsConnection) {
  return cachedSource(async () => {
    const kv = await openBucket(nc, buckets.nodes);
    const out = new Map<string, number>();
    for await (const node of await kv.keys()) {
      const e = await kv.get(node);
      if (!e || e.operation !== 'PUT') continue;
      const time = (decodeJson(e.value) as { time?: unknown }).time;
      const at = typeof time === 'string' ? Date.parse(time) : NaN;
      if (!Number.isNaN(at)) out.set(node, at);
    }
    return out;
  }, new Map<string, number>());
}

/**
 * Serve a service's registry when metrics are on: its own metrics, its durable consumer's pending counts and the
 * process's; off, nothing is served or collected (the service's counters still count, for nobody).
 */
export async function exposeMetrics(o: {
  registry: Registry;
  cfg: MetricsConfig | undefined;
  log: Logger;
  nc: NatsConnection;
  stream: string;
  consumer: string;
}): Promise<{ close(): void }> {
  if (!o.cfg) return { close() {} };
  consumerMetrics(o.registry, consumerInfoOf(o.nc, o.stream, o.consumer));
  processMetrics(o.registry);
  const server = await serveMetrics(o.registry, o.cfg, o.log);
  return { close: () => void server.close() };
}

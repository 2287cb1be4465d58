import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { TimelineEntry, WebChange, WebModel } from './web-model.ts';
import type { PageFiles } from './web-page.ts';

/** What the page is told besides the migrations and nodes. */
export type WebInfo = {
  /** A heartbeat older than this is stale (admission refuses the node). */
  staleMs: number;
};

export type WebServerOptions = {
  model: WebModel;
  page: PageFiles;
  info: WebInfo;
  /** One migration's timeline: from the model, or read from the log for a migration it does not hold. */
  timeline(migrationId: string): Promise<TimelineEntry[] | undefined>;
  /** Host names the page may be asked for besides loopback names, IP addresses and the listen host. */
  acceptHosts?: readonly string[];
};

/** A browser that stops reading has this much queued at most, then it is dropped (EventSource reconnects). */
const maxQueuedBytes = 1024 * 1024;
/** A comment this often keeps proxies and load balancers from closing a quiet stream. */
const pingEveryMs = 15_000;

const securityHeaders = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/**
 * The web view's HTTP server (node:http, no framework): the page, its live stream of changes as Server-Sent Events,
 * and two JSON reads. Read-only by construction: it answers GET and HEAD and nothing else, and nothing it serves
 * writes to NATS.
 */
export function createWebServer(o: WebServerOptions) {
  const streams = new Set<ServerResponse>();
  let nats = 'connected';
  let listenHost = '';
  const accepted = new Set(['localhost', ...(o.acceptHosts ?? []).map((h) => h.toLowerCase())]);

  const snapshot = () => ({
    serverTime: new Date().toISOString(),
    ...o.info,
    nats,
    migrations: o.model.migrations(),
    nodes: o.model.nodes(),
  });

  const send = (res: ServerResponse, event: string, data: unknown) => {
    if (res.writableLength > maxQueuedBytes) {
      res.destroy();
      streams.delete(res);
      return;
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const broadcast = (event: string, data: Record<string, unknown>) => {
    const stamped = { serverTime: new Date().toISOString(), ...data };
    for (const res of streams) send(res, event, stamped);
  };

  const ping = setInterval(() => {
    for (const res of streams) res.write(': ping\n\n');
  }, pingEveryMs);
  ping.unref();

  function openStream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      ...securityHeaders,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      // Proxies that buffer (nginx) would hold the events back.
      'X-Accel-Buffering': 'no',
    });
    if (req.method === 'HEAD') return void res.end();
    // A reconnecting EventSource waits this long; every (re)connection starts with a whole snapshot.
    res.write('retry: 1000\n\n');
    send(res, 'snapshot', snapshot());
    streams.add(res);
    req.on('close', () => streams.delete(res));
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!hostAccepted(req.headers.host, listenHost, accepted))
      return reply(res, 403, 'text/plain', 'this host name is not served (haul web --accept-host NAME)\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return reply(res, 405, 'text/plain', 'the web view is read-only\n');
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const file = o.page.files[path];
    if (file) return reply(res, 200, file.type, file.body, req.method === 'HEAD');
    if (path === '/events') return openStream(req, res);
    if (path === '/api/state') return json(res, 200, snapshot());
    const m = /^\/api\/migrations\/([A-Za-z0-9_-]+)\/timeline$/.exec(path);
    if (m) {
      const entries = await o.timeline(m[1]!);
      return entries
        ? json(res, 200, { migrationId: m[1], entries })
        : json(res, 404, { error: 'no such migration' });
    }
    return reply(res, 404, 'text/plain', 'not found\n');
  }

  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: (err as Error).message });
      else res.destroy();
    });
  });

  return {
    /** Listen; resolves to the address actually bound (port 0 picks a free one). */
    listen(host: string, port: number): Promise<AddressInfo> {
      listenHost = host.toLowerCase();
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    /** Tell every open page what changed. */
    change(c: WebChange): void {
      const { kind, ...rest } = c;
      broadcast(kind, rest);
    },
    /** The NATS connection's state, shown on the page (a view that cannot read goes stale silently otherwise). */
    natsStatus(s: string): void {
      nats = s;
      broadcast('nats', { nats: s });
    },
    /** Open event streams (tests). */
    get clients(): number {
      return streams.size;
    },
    async close(): Promise<void> {
      clearInterval(ping);
      for (const res of streams) res.end();
      streams.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

export type WebServer = ReturnType<typeof createWebServer>;

function reply(res: ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.writeHead(status, {
    ...securityHeaders,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-cache',
  });
  res.end(headOnly ? undefined : body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  reply(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

/**
 * Whether a request's Host may be served: an IP address, a name given with --accept-host, the listen host, or
 * `localhost`. A page on another site can make the browser send requests here under its own name that resolves to
 * loopback (DNS rebinding) and read the answers as same-origin; such a name is refused (kubectl proxy's
 * --accept-hosts does the same).
 */
export function hostAccepted(
  host: string | undefined,
  listenHost: string,
  accepted: ReadonlySet<string>,
): boolean {
  if (!host) return false;
  const name = host.toLowerCase().replace(/:\d+$/, '');
  const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  return isIP(bare) !== 0 || bare === listenHost || accepted.has(bare);
}

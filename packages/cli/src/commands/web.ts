import { limits } from '@haul/bus';
import { CliError, NoCoordinatorError, UsageError, WaitTimeoutError } from '../errors.ts';
import type { Command, Context } from '../command.ts';
import { createWebModel, timelineEntry } from '../web-model.ts';
import { loadPage } from '../web-page.ts';
import { createWebServer, type WebServer } from '../web-server.ts';
import { feedModel } from '../web-sources.ts';

const defaultListen = '127.0.0.1:8080';

export const web: Command = {
  name: 'web',
  summary: 'serve a live web view of migrations, nodes and event timelines (read-only)',
  description: `Serve a web page, like kubectl proxy, that shows the migrations live (phase, transfer progress, rate, ETA, the
frozen timer while the CT runs nowhere), the nodes with the age of their heartbeats, and one migration's event
timeline. It reads what the ops role may read, with the caller's identity: the event log, the progress and
node buckets, and the scheduler API's list of active migrations. The page updates itself over Server-Sent
Events (GET /events); GET /api/state is the same as JSON. Nothing it serves can change anything. Runs until
Ctrl-C.`,
  positionals: [],
  flags: {
    listen: {
      kind: 'string',
      value: 'HOST:PORT',
      help: 'where to serve the page (port 0: any free port)',
      default: defaultListen,
    },
    since: {
      kind: 'duration',
      value: 'DURATION',
      help: 'show migrations with events in the last DURATION, and every active one',
      default: '24h',
    },
    'accept-host': {
      kind: 'string',
      value: 'NAME',
      help: 'also answer requests for this host name (behind a proxy); repeat per name',
      multiple: true,
    },
  },
  examples: [
    'haul web',
    'HAUL_NKEY_SEED_FILE=/etc/haul/ops.nk haul web --listen 127.0.0.1:9090 --since 2h',
    'ssh -L 8080:127.0.0.1:8080 ops-host haul web   # then open http://127.0.0.1:8080/',
  ],
  exits: ['completed'],
  runsUntilStopped: true,
  run: serveWeb,
};

async function serveWeb(ctx: Context): Promise<'completed'> {
  const { host, port } = parseListen(ctx.args.str('listen') ?? defaultListen);
  const since = new Date(Date.now() - (ctx.args.ms('since') ?? 24 * 3_600_000));
  const [nc, log] = [await ctx.nc(), await ctx.log()];
  // Changes reach the server once it exists (the model reports none before anything is read).
  const model = createWebModel((c) => server.change(c));
  const server: WebServer = createWebServer({
    model,
    page: loadPage(),
    info: { staleMs: limits.nodeStaleMs },
    acceptHosts: ctx.args.list('accept-host'),
    timeline: async (id) => model.timeline(id) ?? nonEmpty((await log.read(id)).events.map(timelineEntry)),
  });
  const addr = await server.listen(host, port).catch((err: NodeJS.ErrnoException) => {
    throw new CliError('error', `cannot listen on ${host}:${port}: ${err.code ?? err.message}`, {
      cause: err,
    });
  });
  // SIGTERM (systemd, a test) ends it as Ctrl-C does, after closing the page's streams.
  const stop = new AbortController();
  const onTerm = () => stop.abort();
  process.once('SIGTERM', onTerm);
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  ctx.say(`haul web: serving http://${urlHost(addr.address)}:${addr.port}/ (read-only; Ctrl-C stops)`);
  void (async () => {
    for await (const s of nc.status())
      if (s.type === 'disconnect' || s.type === 'reconnect')
        server.natsStatus(s.type === 'reconnect' ? 'connected' : 'disconnected');
  })().catch(() => {}); // only a display: the readers report their own failures
  try {
    await feedModel(
      { nc, log, activeMigrations: () => activeMigrations(ctx) },
      model,
      since,
      signal,
      (line) => ctx.say(line),
    );
  } finally {
    process.off('SIGTERM', onTerm);
    await server.close();
  }
  return 'completed';
}

/** The active migrations a coordinator lists; undefined when none answers (the view still works from the log). */
async function activeMigrations(ctx: Context): Promise<string[] | undefined> {
  try {
    const r = await (await ctx.api()).list(true);
    return r.ok ? (r.migrations ?? []).map((m) => m.migrationId) : undefined;
  } catch (err) {
    if (err instanceof NoCoordinatorError || err instanceof WaitTimeoutError) return undefined;
    throw err;
  }
}

const nonEmpty = <T>(xs: T[]): T[] | undefined => (xs.length ? xs : undefined);

/** `HOST:PORT`, `[::1]:PORT`, or a bare `PORT` (on loopback). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):)?([0-9]{1,5})$/.exec(s);
  const port = Number(m?.[2]);
  if (!m || port > 65535)
    throw new UsageError(
      `--listen: expected HOST:PORT (e.g. ${defaultListen}), got ${JSON.stringify(s)}`,
      'web',
    );
  const host = m[1] ?? '127.0.0.1';
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port };
}

const urlHost = (address: string) => (address.includes(':') ? `[${address}]` : address);

import assert from 'node:assert/strict';
import { get, request, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { parseListen } from './commands/web.ts';
import { UsageError } from './errors.ts';
import { createWebModel } from './web-model.ts';
import { loadPage } from './web-page.ts';
import { createWebServer, hostAccepted, type WebServer } from './web-server.ts';

const requested: MigrationEvent = {
  eventId: 'm-1:requested',
  migrationId: 'm-1',
  type: 'MigrationRequested',
  actor: { service: 'coordinator', node: 'coord' },
  time: '2026-01-01T00:00:00.000Z',
  schemaVersion: 1,
  data: {
    request: { requestId: 'r-1', ctid: '101', source: 'node-a', target: 'node-b' },
    imageRoots: { source: '/a', target: '/b' },
  },
};

type Answer = { status: number; headers: IncomingMessage['headers']; body: string };

function call(port: number, path: string, method = 'GET', host?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { port, host: '127.0.0.1', path, method, headers: host ? { Host: host } : {} },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.once('error', reject);
    req.end();
  });
}

/** An event stream: its messages as they come ({event, data}), and close(). */
function openEvents(port: number) {
  const messages: { event: string; data: Record<string, unknown> }[] = [];
  const waiters: (() => void)[] = [];
  let res: IncomingMessage | undefined;
  const req = get({ port, host: '127.0.0.1', path: '/events' }, (r) => {
    res = r;
    let buf = '';
    r.on('data', (d: Buffer) => {
      buf += d.toString();
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) messages.push({ event, data: JSON.parse(data) as Record<string, unknown> });
        for (const w of waiters.splice(0)) w();
      }
    });
  });
  return {
    messages,
    headers: () => res?.headers,
    /** Resolves when `n` messages have come. */
    async count(n: number) {
      while (messages.length < n) await new Promise<void>((r) => waiters.push(r));
    },
    close: () => req.destroy(),
  };
}

describe('the web view server', () => {
  const model = createWebModel((c) => server.change(c));
  const server: WebServer = createWebServer({
    model,
    page: loadPage(),
    info: { staleMs: 10_000 },
    timeline: (id) => Promise.resolve(model.timeline(id)),
  });
  let port = 0;
  before(async () => {
    port = (await server.listen('127.0.0.1', 0)).port;
  });
  after(() => server.close());

  it('serves the page and its files with a policy that allows only its own scripts', async () => {
    for (const [path, type] of [
      ['/', /^text\/html/],
      ['/app.js', /^text\/javascript/],
      ['/style.css', /^text\/css/],
    ] as const) {
      const r = await call(port, path);
      assert.equal(r.status, 200, path);
      assert.match(String(r.headers['content-type']), type);
      assert.match(String(r.headers['content-security-policy']), /script-src 'self'/);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
    }
    assert.match((await call(port, '/')).body, /<script src="\/app.js" defer><\/script>/);
    assert.equal((await call(port, '/nothing')).status, 404);
  });

  it('is read-only: every method but GET and HEAD is refused', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await call(port, '/api/state', method);
      assert.equal(r.status, 405, method);
      assert.equal(r.headers['allow'], 'GET, HEAD');
    }
    const head = await call(port, '/', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  it('answers only for IP addresses, localhost, the listen host and accepted names (no DNS rebinding)', async () => {
    assert.equal((await call(port, '/', 'GET', 'evil.example')).status, 403);
    assert.equal((await call(port, '/', 'GET', `localhost:${port}`)).status, 200);
    const accepted = new Set(['localhost', 'haul.example']);
    assert.ok(hostAccepted('127.0.0.1:8080', '127.0.0.1', accepted));
    assert.ok(hostAccepted('[::1]:8080', '::1', accepted));
    assert.ok(hostAccepted('10.1.2.3', '0.0.0.0', accepted));
    assert.ok(hostAccepted('HAUL.example:443', '0.0.0.0', accepted));
    assert.ok(hostAccepted('ops-box', 'ops-box', accepted));
    assert.ok(!hostAccepted('localhost.evil.example', '127.0.0.1', accepted));
    assert.ok(!hostAccepted(undefined, '127.0.0.1', accepted));
  });

  it('streams a snapshot first, then every change; the timeline and the state read as JSON', async () => {
    const events = openEvents(port);
    await events.count(1);
    assert.match(String(events.headers()?.['content-type']), /^text\/event-stream/);
    assert.equal(events.messages[0]!.event, 'snapshot');
    assert.deepEqual(events.messages[0]!.data['migrations'], []);
    model.apply('m-1', [{ seq: 7, event: requested }]);
    await events.count(2);
    const change = events.messages[1]!;
    assert.equal(change.event, 'migration');
    assert.equal((change.data['view'] as { phase: string }).phase, 'preflight');
    assert.deepEqual(
      (change.data['entries'] as { seq: number; type: string }[]).map((e) => [e.seq, e.type]),
      [[7, 'MigrationRequested']],
    );
    server.natsStatus('disconnected');
    await events.count(3);
    assert.deepEqual(events.messages[2]!.event, 'nats');
    events.close();

    const state = JSON.parse((await call(port, '/api/state')).body) as {
      migrations: { migrationId: string }[];
    };
    assert.deepEqual(
      state.migrations.map((m) => m.migrationId),
      ['m-1'],
    );
    const timeline = await call(port, '/api/migrations/m-1/timeline');
    assert.equal(timeline.status, 200);
    assert.equal((JSON.parse(timeline.body) as { entries: unknown[] }).entries.length, 1);
    assert.equal((await call(port, '/api/migrations/m-2/timeline')).status, 404);
    assert.equal((await call(port, '/api/migrations/a.b/timeline')).status, 404);
  });

  it('parses --listen', () => {
    assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListen('9090'), { host: '127.0.0.1', port: 9090 });
    assert.deepEqual(parseListen('ops-box:80'), { host: 'ops-box', port: 80 });
    for (const bad of ['', ':8080', 'host:', 'host:70000', 'a:b:1'])
      assert.throws(() => parseListen(bad), UsageError, bad);
  });
});

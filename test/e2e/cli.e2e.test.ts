import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeJson, subjects } from '@haul/bus';
import { awaitEvent, publishAs, repoRoot, startRunningWorld, type World } from '@haul/test';

/** Run the CLI as ops does: it reads events only as the cluster's registry (HAUL_IDENTITIES_FILE) says to believe them. */
let opsEnv: Record<string, string> = {};
function haul(
  url: string,
  args: string[],
  env: Record<string, string> = opsEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'haul.mjs'), ...args], {
      env: { ...process.env, HAUL_NATS_URL: url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => resolve({ code, out, err }));
  });
}

describe('the ops CLI against a running installation', () => {
  let w: World;
  let id = '';
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16 });
    opsEnv = w.identities.env('ops');
  });
  after(() => w?.stop());

  it('haul migrate shows live progress and the stats, exit 0 on success', async () => {
    const r = await haul(w.server.url, [
      'migrate',
      '--ct',
      w.ctid,
      '--from',
      'node-a',
      '--to',
      'node-b',
      '--shared-disk',
      w.shared[0]!,
      '--request-id',
      'cli-1',
    ]);
    assert.equal(r.code, 0, r.err + r.out);
    id = /^migration (m-[0-9a-f]+)/m.exec(r.out)![1]!;
    assert.match(r.out, /\[pre-dump 0\]/);
    assert.match(r.out, /Migration succeeded/);
    assert.match(r.out, / restore time is ~/);
  });

  it('haul status, ls, events and nodes read what happened', async () => {
    const st = await haul(w.server.url, ['status', id, '--json']);
    assert.equal((JSON.parse(st.out) as { phase: string }).phase, 'completed');
    assert.match((await haul(w.server.url, ['ls'])).out, new RegExp(`${id}\\s+CT 101`));
    const ev = await haul(w.server.url, ['events', '--migration', id, '--json']);
    const lines = ev.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; type: string });
    assert.equal(lines[0]!.type, 'MigrationRequested');
    assert.equal(lines.at(-1)!.type, 'MigrationCompleted');
    assert.ok(lines.every((l, i) => i === 0 || l.seq > lines[i - 1]!.seq));
    const noRegistry = await haul(w.server.url, ['events', '--migration', id], {});
    assert.equal(noRegistry.code, 2, 'events are not shown unverified');
    assert.match(noRegistry.err, /HAUL_IDENTITIES_FILE/);
    const human = await haul(w.server.url, ['events', '--migration', id, '--from-seq', '1']);
    assert.match(human.out, /StepSucceeded\s+restore/);
    const nodes = await haul(w.server.url, ['nodes']);
    assert.match(nodes.out, /node-a\s+alive/);
    assert.match(nodes.out, /node-b\s+alive/);
    const svc = (await haul(w.server.url, ['services', '--json'])).out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { service: string; node: string });
    assert.deepEqual(svc.map((x) => `${x.service}@${x.node}`).sort(), [
      'coordinator@coordinator',
      'image-streamer@node-a',
      'image-streamer@node-b',
      'node-agent@node-a',
      'node-agent@node-b',
    ]);
  });

  it('errors are clear: a finished migration cannot be cancelled, a bad request names the field, no NATS', async () => {
    const c = await haul(w.server.url, ['cancel', id]);
    assert.equal(c.code, 2);
    assert.match(c.err, /HAUL_MIGRATION_FINISHED/);
    const bad = await haul(w.server.url, ['migrate', '--ct', w.ctid, '--from', 'node-b']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /field target/);
    const down = await haul('nats://127.0.0.1:1', ['ls']);
    assert.equal(down.code, 3);
    assert.match(down.err, /cannot reach NATS/);
  });

  it('a malformed command gets a CommandRejected event naming the field, and the agent stays up', async () => {
    const cmd = {
      commandId: 'm-bad0001:preDump:0:1',
      migrationId: 'm-bad0001',
      node: 'node-b',
      executor: 'agent',
      attempt: 1,
      step: 'preDump',
      timeoutMs: 1000,
      args: { ctid: '101', iteration: 0, workDir: '/tmp' },
    };
    const coordinator = w.identities.trust('coordinator');
    await publishAs(w.nc, coordinator, subjects.commands('node-b', 'agent'), encodeJson(cmd), 'bad-1');
    const e = await awaitEvent(w.eventLog, 'm-bad0001', (x) => x.type === 'CommandRejected');
    assert.equal(e.type === 'CommandRejected' && e.data.error.field, 'args.imageDir');
    assert.match((await haul(w.server.url, ['nodes'])).out, /node-b\s+alive/);
  });
});

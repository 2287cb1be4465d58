import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'puppeteer-core';
import { limits } from '@haul/bus';
import type { Terminal } from '@haul/cli';
import { evolve, initialState, projectStatus } from '@haul/domain';
import {
  launchBrowser,
  repoRoot,
  startRunningWorld,
  startService,
  type ServiceProcess,
  type World,
} from '@haul/test';

/** Screenshots of the page, kept after the run (test-artifacts/ is ignored by git). */
const artifacts = join(repoRoot, 'test-artifacts', 'web-view');

/** What the page showed over time, recorded in the browser on every change of the page. */
type Seen = { phases: Record<string, string[]>; frozen: string[]; maxPercent: Record<string, number> };

/**
 * Installed in the page (plain browser JavaScript: the tests' TypeScript has no DOM types): records every phase each
 * migration's row shows, whether its frozen timer ran and its transfer progress, on every change of the page; and
 * reads what the page shows now.
 */
const probe = `(() => {
  const seen = { phases: {}, frozen: [], maxPercent: {} };
  const look = () => {
    for (const row of document.querySelectorAll('#migrations tr[data-migration]')) {
      const id = row.dataset.migration;
      const phases = (seen.phases[id] ??= []);
      if (phases.at(-1) !== row.dataset.phase) phases.push(row.dataset.phase);
      if (row.querySelector('[data-frozen]') && !seen.frozen.includes(id)) seen.frozen.push(id);
      const bar = row.querySelector('.progress[data-percent]');
      if (bar) seen.maxPercent[id] = Math.max(seen.maxPercent[id] ?? 0, Number(bar.dataset.percent));
    }
  };
  new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true });
  look();
  window.haulProbe = {
    seen,
    nodes: () => [...document.querySelectorAll('.node')].map((n) => ({
      node: n.dataset.node, state: n.dataset.state, age: n.querySelector('[data-tick]').textContent,
    })),
    timeline: () => [...document.querySelectorAll('#timeline tr[data-seq]')].map((tr) => [Number(tr.dataset.seq), tr.dataset.type]),
    stats: () => Object.fromEntries([...document.querySelectorAll('#stats [data-stat]')].map((d) => [d.dataset.stat, Number(d.dataset.value)])),
    detailPhase: () => document.querySelector('#detail').dataset.phase,
  };
})()`;

/** Read what the page shows through the probe. */
const read = <T>(page: Page, expr: string): Promise<T> =>
  page.evaluate(`window.haulProbe.${expr}`) as Promise<T>;

/** A raw HTTP request to the view (a Host header of our choosing, which fetch does not allow). */
function rawRequest(url: string, method: string, host?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: host ? { Host: host } : {} }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

/** The phases the coordinator's projection goes through over this log, each once in a row. */
function phasesOf(events: Parameters<typeof evolve>[1][]): string[] {
  let s = initialState();
  const out: string[] = [];
  events.forEach((e, i) => {
    s = evolve(s, e);
    const phase = projectStatus(s, i + 1)?.phase;
    if (phase && out.at(-1) !== phase) out.push(phase);
  });
  return out;
}

/**
 * The migration's terminal event. A migration that gets stuck instead (a cleanup step past its timeout on a machine
 * far too busy for it) waits for an operator: that fails the test at once instead of waiting for ever.
 */
async function endOf(w: World, id: string): Promise<Terminal> {
  for await (const { event } of w.eventLog.follow({ migrationId: id })) {
    if (event.type === 'MigrationCompleted' || event.type === 'MigrationRolledBack') return event;
    if (event.type === 'MigrationStuck') assert.fail(`the migration got stuck: ${event.data.reason}`);
  }
  throw new Error('the log ended before the migration did');
}

describe('haul web: the live view in a real browser (Chromium), read as ops', () => {
  let w: World;
  let web: ServiceProcess;
  let browser: Browser;
  let page: Page;
  let url: string;

  before(async () => {
    mkdirSync(artifacts, { recursive: true });
    // A secure world: haul web connects as `ops`, with exactly the permissions of that role.
    // No shared disk and a small CT: fewer steps, the same view (a shared disk's steps are steps like any other).
    w = await startRunningWorld({ secure: true, sharedDisks: 0, memoryMb: 16, dirtyRate: 200 });
    web = startService(
      'haul-web',
      'bin/haul.mjs',
      { ...process.env, ...w.envAs('ops') },
      [],
      ['web', '--listen', '127.0.0.1:0'],
    );
    const [, served] = /serving (http:\/\/\S+)/.exec(await web.waitForLine(/haul web: serving http/))!;
    url = served!;
    browser = await launchBrowser();
    page = await browser.newPage();
    await page.setViewport({ width: 1440, height: 900 });
    await page.goto(url);
    await page.waitForSelector('body[data-live="true"]');
    await page.evaluate(probe);
  });
  after(async () => {
    await browser?.close();
    await web?.kill('SIGKILL');
    await w?.stop();
  });

  it('shows both nodes with fresh heartbeats, and refuses to change anything or to serve a foreign host name', async () => {
    await page.waitForFunction(`document.querySelectorAll('.node[data-state="alive"]').length === 2`);
    const nodes = await read<{ node: string; state: string; age: string }[]>(page, 'nodes()');
    assert.deepEqual(
      nodes.map((n) => n.node),
      ['node-a', 'node-b'],
    );
    for (const n of nodes) assert.ok(Number.parseFloat(n.age) * 1000 < limits.nodeStaleMs, n.age);
    assert.equal(await rawRequest(url, 'POST'), 405);
    assert.equal(await rawRequest(`${url}api/state`, 'DELETE'), 405);
    assert.equal(await rawRequest(url, 'GET', 'attacker.example:8080'), 403, 'a rebound DNS name');
    assert.equal(await rawRequest(url, 'GET', 'localhost'), 200);
  });

  it(
    'shows a live migration: its phases advance as its log says, the progress, the frozen timer, and its end',
    {
      timeout: 600_000,
    },
    async () => {
      // Throttled so that its transfers run for seconds: the page shows their progress.
      const r = await w.migrate('web-live', { bandwidthLimitMBps: 8, maxIterations: 1 });
      assert.ok(r.ok, JSON.stringify(r));
      if (!r.ok) return;
      const id = r.migrationId;
      const row = `#migrations tr[data-migration="${id}"]`;
      await page.waitForSelector(`${row} .progress[data-percent]`, { timeout: 60_000 });
      const during = join(artifacts, 'during-transfer.png');
      await page.screenshot({ path: during });
      console.log(`screenshot of the web view during the migration: ${during}`);
      // The CT runs nowhere from the final dump's intent until the restore: at least the throttled final transfer. A
      // migration that ends before it (on a machine far too busy for it, a stalled transfer rolls it back) never
      // freezes: the wait ends with the migration then, and the checks below hold either way.
      const ended = endOf(w, id);
      const stop = new AbortController();
      const frozenShown = await Promise.race([
        page
          .waitForSelector(`${row} [data-frozen]`, { timeout: 0, signal: stop.signal })
          .then(() => true)
          .catch(() => false),
        ended.then(() => false),
      ]).finally(() => stop.abort());
      if (frozenShown) {
        const frozen = join(artifacts, 'while-frozen.png');
        await page.screenshot({ path: frozen });
        console.log(`screenshot of the web view while the CT is frozen: ${frozen}`);
        // Read in one render: while its frozen timer runs, the row never says the CT is between pre-dumps.
        const phaseWhileFrozen = (await page.evaluate(
          `(() => { const tr = document.querySelector(${JSON.stringify(row)});
          return tr && tr.querySelector('[data-frozen]') ? (tr.querySelector('td:nth-child(4)')?.textContent ?? '') : null; })()`,
        )) as string | null;
        if (phaseWhileFrozen !== null) assert.doesNotMatch(phaseWhileFrozen, /pre-dump/);
      }

      const end = await ended;
      const log = await w.eventLog.read(id);
      const finalPhase = end.type === 'MigrationCompleted' ? 'completed' : 'rolled-back';
      // Either end is what the page must show: the view is under test, not the migration (on a machine far too busy
      // for it a transfer can stall and the migration roll back; the page must then say so).
      if (end.type === 'MigrationRolledBack') console.log(`the migration rolled back: ${end.data.reason}`);
      // The page follows the log: wait for its last event in the timeline, then compare.
      await page.waitForSelector(`#timeline tr[data-seq="${log.lastSeq}"]`, { timeout: 30_000 });
      await page.waitForSelector(`${row}[data-phase="${finalPhase}"]`);
      const final = join(artifacts, 'after-completion.png');
      await page.screenshot({ path: final, fullPage: true });
      console.log(`screenshot of the web view after the migration: ${final}`);

      const seen = await read<Seen>(page, 'seen');
      assert.deepEqual(seen.phases[id], phasesOf(log.events.map((e) => e.event)), 'every phase, in order');
      assert.ok((seen.phases[id] ?? []).length >= 3, JSON.stringify(seen.phases[id]));
      const froze = log.events.some(
        (e) => e.event.type === 'StepIntended' && e.event.data.step === 'finalDump',
      );
      assert.ok(!froze || seen.frozen.includes(id), 'the frozen timer ran while the CT ran nowhere');
      assert.ok((seen.maxPercent[id] ?? 0) > 0, `progress shown: ${JSON.stringify(seen.maxPercent)}`);

      // The coordinator's seal of the log may come after the read or after the page's render: left out of both.
      const timeline = (await read<[number, string][]>(page, 'timeline()')).filter(
        ([, type]) => type !== 'MigrationSealed',
      );
      assert.deepEqual(
        timeline,
        log.events.filter((e) => e.event.type !== 'MigrationSealed').map((e) => [e.seq, e.event.type]),
        'the timeline is the log',
      );
      assert.equal(timeline.at(-1)?.[1], end.type);
      const stats = await read<Record<string, number>>(page, 'stats()');
      assert.equal(stats['downtimeMs'], end.data.stats.downtimeMs);
      assert.equal(stats['totalMs'], end.data.stats.totalMs);
      assert.equal(stats['bytesStreamed'], end.data.stats.bytesStreamed);
      assert.equal(await read<string>(page, 'detailPhase()'), finalPhase);
    },
  );

  it('stops on SIGTERM with exit code 0', async () => {
    await web.kill('SIGTERM');
    assert.equal(await web.exited, 0);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { liveScenario, simulate } from '../../domain/test/simulate.ts';
import type { Context } from './command.ts';
import {
  endOf,
  moveOne,
  pool,
  progress,
  spread,
  summarize,
  worst,
  type Result,
} from './commands/evacuate.ts';
import { NoCoordinatorError } from './errors.ts';
import { createOutput } from './output.ts';

describe('evacuate', () => {
  it('spreads the CTs evenly over the targets, in a stable order', () => {
    assert.deepEqual(
      spread(['101', '102', '103', '104', '105'], ['node-b', 'node-c']).map((p) => `${p.ct}>${p.target}`),
      ['101>node-b', '102>node-c', '103>node-b', '104>node-c', '105>node-b'],
    );
  });

  it('runs at most N at a time and keeps each result at its item’s place', async () => {
    let running = 0;
    let most = 0;
    const gates: (() => void)[] = [];
    const done = pool([1, 2, 3, 4, 5], 2, async (x) => {
      most = Math.max(most, ++running);
      await new Promise<void>((r) => gates.push(r));
      running--;
      return x * 10;
    });
    // Open the gates one by one as workers reach them: never more than two wait at once.
    while (gates.length || running) {
      await new Promise((r) => setImmediate(r));
      gates.shift()?.();
    }
    assert.deepEqual(await done, [10, 20, 30, 40, 50]);
    assert.equal(most, 2);
  });
});

describe('evacuate: how each CT’s migration ended, and the evacuation’s exit', () => {
  const completed = simulate(liveScenario()).events;
  /** The completed migration, asked with a budget of `budgetMs` and frozen for `downtimeMs`. */
  const withBudget = (budgetMs: number, downtimeMs: number): MigrationEvent[] =>
    completed.map((e) =>
      e.type === 'MigrationRequested'
        ? { ...e, data: { ...e.data, request: { ...e.data.request, maxDowntimeMs: budgetMs } } }
        : e.type === 'MigrationCompleted'
          ? { ...e, data: { stats: { ...e.data.stats, downtimeMs } } }
          : e,
    );

  it('a migration that completed over its downtime budget is over budget, as haul migrate says, with why', () => {
    const end = endOf(withBudget(500, 1_700));
    assert.equal(end.outcome, 'overBudget');
    assert.equal(end.downtimeMs, 1_700);
    assert.equal(
      end.detail,
      'downtime 1.70 s exceeded the budget of 0.50 s (--max-downtime-ms 500) by 1.20 s',
    );
  });

  it('one that kept its budget is completed; one refused by preflight is rejected, with its reason', () => {
    assert.deepEqual(endOf(withBudget(500, 400)), { outcome: 'completed', downtimeMs: 400 });
    const refused = simulate(
      liveScenario({ fault: { kind: 'fail', step: 'preflightSource', nth: 1, partial: false } }),
    ).events;
    const end = endOf(refused);
    assert.equal(end.outcome, 'rejected');
    assert.ok(end.detail, 'the rollback’s reason');
  });

  it('exits with the worst outcome, over budget right above completed (mildest first)', () => {
    assert.equal(worst([]), 'completed');
    assert.equal(worst(['completed', 'overBudget', 'completed']), 'overBudget');
    assert.equal(worst(['overBudget', 'rejected']), 'rejected');
    assert.equal(worst(['rolledBack', 'overBudget']), 'rolledBack');
    assert.equal(worst(['overBudget', 'stuck', 'timeout']), 'stuck');
    assert.equal(worst(['completed', 'noCoordinator', 'rejected']), 'noCoordinator');
  });

  it('a CT asked when no coordinator answers ends as noCoordinator, so the evacuation exits 75, not 1', async () => {
    const ctx = {
      say: () => {},
      json: true,
      out: createOutput({ write: () => {} }, {}),
      api: () => Promise.reject(new NoCoordinatorError('haul.api.migrate')),
    } as unknown as Context;
    const move = { ct: '101', target: 'node-b', source: 'node-a', runId: 'r', index: 0, total: 1 };
    const req = { requestId: 'evacuate-node-a-r-101', ctid: '101', source: 'node-a', target: 'node-b' };
    const r = await moveOne(ctx, move, req, new AbortController().signal);
    assert.equal(r.outcome, 'noCoordinator');
    assert.match(r.detail ?? '', /no coordinator is answering on haul.api.migrate/);
    assert.equal(worst([r.outcome]), 'noCoordinator');
  });
});

describe('evacuate: what it prints', () => {
  const results: Result[] = [
    { ct: '101', target: 'node-b', migrationId: 'm-1', outcome: 'completed', ms: 3_000, downtimeMs: 300 },
    {
      ct: '102',
      target: 'node-c',
      migrationId: 'm-2',
      outcome: 'overBudget',
      ms: 4_000,
      downtimeMs: 1_700,
      detail: 'downtime 1.70 s exceeded the budget of 0.50 s (--max-downtime-ms 500) by 1.20 s',
    },
    { ct: '103', target: 'node-b', outcome: 'rejected', ms: 20, detail: 'HAUL_NODE_UNKNOWN: no such node' },
  ];
  /** A context whose output is kept, `width` columns wide. */
  const capture = (json: boolean, width = 200) => {
    const lines: string[] = [];
    const out = createOutput(
      { write: (s: string) => lines.push(...s.replace(/\n$/, '').split('\n')) },
      { COLUMNS: String(width) },
    );
    return { ctx: { out, json, say: () => {} } as unknown as Context, lines };
  };

  it('a line per change of each CT, naming it, its target, its migration and its outcome', () => {
    const { ctx, lines } = capture(false);
    progress(ctx, '[2/3] CT 102 → node-c', {
      ct: '102',
      target: 'node-c',
      migrationId: 'm-2',
      phase: 'frozen',
    });
    progress(ctx, '[2/3] CT 102 → node-c', {
      ct: '102',
      target: 'node-c',
      migrationId: 'm-2',
      phase: 'overBudget',
      detail: 'downtime 1.70 s exceeded the budget',
    });
    assert.deepEqual(lines, [
      '[2/3] CT 102 → node-c m-2: frozen',
      '[2/3] CT 102 → node-c m-2: overBudget (downtime 1.70 s exceeded the budget)',
    ]);
  });

  it('a table of every CT, and how many left the node, those over their budget among them', () => {
    const { ctx, lines } = capture(false);
    summarize(ctx, 'node-a', results);
    assert.match(lines[1]!, /^CT\s+TARGET\s+MIGRATION\s+OUTCOME\s+DURATION\s+DOWNTIME\s+DETAIL$/);
    assert.match(lines[2]!, /^101\s+node-b\s+m-1\s+completed\s+3\.0s\s+300ms\s*$/);
    assert.match(lines[3]!, /^102\s+node-c\s+m-2\s+overBudget\s+4\.0s\s+1\.7s\s+downtime 1\.70 s exceeded/);
    assert.match(lines[4]!, /^103\s+node-b\s+-\s+rejected\s+20ms\s+-\s+HAUL_NODE_UNKNOWN/);
    assert.equal(lines.at(-1), '2 of 3 CTs moved off node-a (1 over the downtime budget)');
  });

  it('the table fits a narrow terminal (the detail is cut)', () => {
    const { ctx, lines } = capture(false, 80);
    summarize(ctx, 'node-a', results);
    assert.ok(
      lines.every((l) => l.length <= 80),
      lines.join('\n'),
    );
  });

  it('--json: the summary is one object with every result and its outcome', () => {
    const { ctx, lines } = capture(true);
    summarize(ctx, 'node-a', results);
    assert.equal(lines.length, 1);
    const summary = JSON.parse(lines[0]!) as { type: string; node: string; results: Result[] };
    assert.equal(summary.type, 'EvacuationSummary');
    assert.equal(summary.node, 'node-a');
    assert.deepEqual(
      summary.results.map((r) => r.outcome),
      ['completed', 'overBudget', 'rejected'],
    );
    assert.match(summary.results[1]!.detail!, /exceeded the budget/);
  });
});

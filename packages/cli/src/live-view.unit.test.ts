import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, fold, initialState, type DecideInput } from '@haul/domain';
import type { MigrationEvent, TransferProgress } from '@haul/schemas';
import { liveScenario, meta, simulate } from '../../domain/test/simulate.ts';
import {
  applyEvent,
  applyReport,
  newLiveView,
  statusLine,
  transferText,
  type LiveView,
} from './live-view.ts';

const log = simulate(liveScenario()).events;
const at = (iso: string, plusMs: number) => Date.parse(iso) + plusMs;

/** The view after the events up to and including the first that matches, with that event and every log line. */
function upTo(match: (e: MigrationEvent) => boolean): { v: LiveView; e: MigrationEvent; lines: string[] } {
  const v = newLiveView();
  const lines: string[] = [];
  for (const e of log) {
    lines.push(...applyEvent(v, e));
    if (match(e)) return { v, e, lines };
  }
  throw new Error('no such event in the log');
}
const intended = (step: string, subject?: string) => (e: MigrationEvent) =>
  e.type === 'StepIntended' &&
  e.data.step === step &&
  (subject === undefined || e.data.commandId.includes(`:${subject}:`));

const report = (commandId: string, changes: Partial<TransferProgress> = {}): TransferProgress => ({
  migrationId: 'mig-sim01',
  commandId,
  node: 'node-a',
  time: '2026-01-01T00:00:00.040Z',
  bytesDone: 12_000_000,
  bytesTotal: 48_000_000,
  mbPerSec: 40,
  etaMs: 900,
  ...changes,
});

describe('the status line of the live view', () => {
  it('shows the CT, the time so far, the pre-dump iteration, the transfer in flight with %, rate and ETA', () => {
    const { v, e } = upTo(intended('streamImages', '0'));
    assert.equal(e.type, 'StepIntended');
    applyReport(v, report(e.type === 'StepIntended' ? e.data.commandId : ''));
    const s = statusLine(v, at(e.time, 0));
    assert.match(
      s.text,
      // (+2): the next pre-dump and the local disk's live pass run beside the transfer
      /^CT 101 node-a→node-b 0\.0s \| pre-dump 1 \| images 0 12\.0\/48\.0 MB 25% 40 MB\/s ETA 0\.9s \(\+2\)$/,
    );
  });
  it('ticks a FROZEN timer from the freeze’s intent until the CT runs again', () => {
    const { v, e } = upTo(intended('finalDump'));
    assert.match(statusLine(v, at(e.time, 1_340)).text, /\| FROZEN 1\.3s \| final dump \|/);
    const restoring = upTo(intended('restore'));
    const t = at(restoring.e.time, 2_000);
    assert.match(statusLine(restoring.v, t).text, /FROZEN 2\.\ds \| restore \| restore on node-b 2\.0s/);
    const landed = upTo((x) => x.type === 'StepSucceeded' && x.data.step === 'restore');
    assert.doesNotMatch(statusLine(landed.v, t).text, /FROZEN/);
  });
  it('says STOPPED instead in restart mode', () => {
    const v = newLiveView();
    for (const e of simulate(liveScenario({ mode: 'restart' })).events) {
      applyEvent(v, e);
      if (e.type === 'StepIntended' && e.data.step === 'stopSource') {
        assert.match(statusLine(v, at(e.time, 500)).text, /\| STOPPED 0\.5s \|/);
        return;
      }
    }
    assert.fail('no stopSource in a restart migration');
  });
  it('a report of a transfer that already ended is not shown', () => {
    const { v, e } = upTo((x) => x.type === 'StepSucceeded' && x.data.step === 'streamImages');
    applyReport(v, report(e.type === 'StepSucceeded' ? e.data.commandId : ''));
    assert.equal(v.transfers.size, 0);
  });
  it('its key changes with what it says, not with its numbers (a pipe prints it on change)', () => {
    const { v, e } = upTo(intended('finalDump'));
    assert.equal(statusLine(v, at(e.time, 100)).key, statusLine(v, at(e.time, 900)).key);
    assert.notEqual(statusLine(v, at(e.time, 100)).text, statusLine(v, at(e.time, 900)).text);
  });
});

describe('the lines the live view logs', () => {
  const { lines } = upTo((e) => e.type === 'MigrationCompleted');
  it('a transfer’s result is shown under the iteration it belongs to, not the phase it ended in', () => {
    // In this log images 0 ends after pre-dump 1 started.
    assert.ok(lines.includes(lines.find((l) => l.startsWith('[pre-dump 0] images 0: '))!), lines.join('\n'));
    assert.ok(
      lines.some((l) => l.startsWith('[final dump] final images: ')),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => l.startsWith('[frozen] disk 0: ')),
      lines.join('\n'),
    );
  });
  it('says each convergence decision in words: no "continue: continue"', () => {
    assert.ok(
      lines.includes('[pre-dump 0] another pre-dump: not converged yet (100 pages)'),
      lines.join('\n'),
    );
    assert.ok(lines.includes('[pre-dump 1] final dump: few pages left (10 pages, -90%)'), lines.join('\n'));
    assert.ok(!lines.some((l) => /continue/.test(l)));
  });
  it('says where the CT runs after the restore, and how long it was down', () => {
    assert.ok(
      lines.some((l) => /^\[restore\] the CT runs on node-b.*, down \d+ms$/.test(l)),
      lines.join('\n'),
    );
  });
});

describe('given a step the coordinator gave up, and then its agent said it never ran there', () => {
  it("the give-up is a failure; the agent's word is told as what it is, not as a second failure", () => {
    const { v, e } = upTo(intended('restore'));
    assert.ok(e.type === 'StepIntended');
    const failed = (code: string, service: string): MigrationEvent =>
      ({
        ...e,
        eventId: `${e.eventId}:${code}`,
        type: 'StepFailed',
        actor: { service, node: service === 'coordinator' ? 'coordinator' : 'node-b' },
        data: {
          commandId: e.data.commandId,
          step: 'restore',
          node: 'node-b',
          attempt: 1,
          error: { code, message: `${code} (test)` },
        },
      }) as MigrationEvent;
    assert.match(
      applyEvent(v, failed('HAUL_STEP_TIMEOUT', 'coordinator')).join(),
      /FAILED: HAUL_STEP_TIMEOUT/,
    );
    const word = applyEvent(v, failed('HAUL_NOT_RUN', 'node-agent'));
    assert.equal(word.length, 1);
    assert.match(word[0]!, /never ran: HAUL_NOT_RUN \(test\)$/);
    assert.ok(!/FAILED/.test(word[0]!));
  });
});

describe('given an operator asks to cancel, retry or resolve while the live view follows the migration', () => {
  /** The lines the view logs for `history` and then what the core decides on `input` (a cancel, retry, resolve). */
  function linesAfter(history: MigrationEvent[], ...inputs: DecideInput[]): string[] {
    const v = newLiveView();
    for (const e of history) applyEvent(v, e);
    const state = fold(history, initialState());
    return inputs.flatMap((input) => decide(input, state)).flatMap((e) => applyEvent(v, e));
  }
  const m = meta(Date.parse('2026-01-01T01:00:00.000Z'));
  const beforeTheFreeze = log.slice(0, log.findIndex(intended('finalDump')));
  const stuck = simulate(liveScenario({ alsoFail: { step: 'mergeOrigin', times: Infinity } })).events;

  /** The [cancel] lines of a cancel "window over", signed by `requestedBy` or unsigned. */
  const cancelLines = (requestedBy?: string) =>
    linesAfter(beforeTheFreeze, {
      kind: 'Cancel',
      reason: 'window over',
      ...(requestedBy === undefined ? {} : { requestedBy }),
      meta: m,
    }).filter((l) => l.startsWith('[cancel]'));

  it('when ops signs a cancel, then its line names ops and the reason, as haul status does', () => {
    assert.deepEqual(cancelLines('ops'), ['[cancel] cancelled by ops: window over']);
  });
  it('when the cancel is unsigned, then its line says the sender is unknown, in haul status’s words', () => {
    assert.deepEqual(cancelLines(), [
      '[cancel] cancelled by an unknown identity (unsigned request): window over',
    ]);
  });
  it('when a stuck action is retried by ops and resolved unsigned, then each line names who asked and why', () => {
    const retried = linesAfter(stuck, { kind: 'Retry', reason: 'disk fixed', requestedBy: 'ops', meta: m });
    const resolved = linesAfter(stuck, {
      kind: 'Resolve',
      action: 'mergeOrigin:1',
      reason: 'merged by hand',
      meta: m,
    });
    assert.deepEqual(
      [...retried, ...resolved].filter((l) => l.startsWith('[operator]')),
      [
        '[operator] retried mergeOrigin:1 by ops: disk fixed',
        '[operator] resolved mergeOrigin:1 by an unknown identity (unsigned request): merged by hand',
      ],
    );
  });
});

describe("a transfer's report", () => {
  it('says what it waits for while it waits on purpose', () => {
    const since = '2026-01-01T00:00:05.000Z';
    const text = (reason: 'priority' | 'slot' | 'sync') =>
      transferText(report('c', { waiting: { reason, since } }));
    assert.equal(text('priority'), '12.0/48.0 MB 25%, waits for the final images');
    assert.equal(text('slot'), '12.0/48.0 MB 25%, waits for a transfer slot');
    assert.equal(
      transferText(report('c', { bytesDone: 48_000_000, waiting: { reason: 'sync', since } })),
      '48.0/48.0 MB 100%, all sent, the target syncs',
    );
    // Before every byte was sent (counted from 0 again), the target's work is its read-back of what it holds
    assert.equal(text('sync'), '12.0/48.0 MB 25%, the target reads back what it holds, to resume');
  });
});

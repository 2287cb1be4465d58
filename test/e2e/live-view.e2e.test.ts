import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exitCodes, type ExitName } from '@haul/cli';
import {
  ensureBuilt,
  repoRoot,
  startRunningWorld,
  startTerminal,
  type Terminal,
  type World,
} from '@haul/test';

const bin = join(repoRoot, 'bin', 'haul.mjs');

/** The status line as the live view draws it: CT, nodes, time since the request, phase … */
const statusLine = /^CT 101 node-[ab]→node-[ab] \d+\.\ds \| /;
const exitLine = (screen: string[]) => screen.find((l) => /^\[exit \d+\]$/.test(l));
const exitOf = (screen: string[]) => Number(/\[exit (\d+)\]/.exec(exitLine(screen) ?? '')?.[1]);

type Run = { code: number | null; out: string; err: string };

describe('the live view of haul migrate and haul wait, in a terminal (tmux) and piped', () => {
  let w: World;
  let term: Terminal;
  let env: Record<string, string>;
  /** haul as a plain process, its output piped. */
  const haul = (args: string[]): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('close', (code) => resolve({ code, out, err })); // its output read to the end
    });
  const exits = (code: number | null, name: ExitName, why: string) =>
    assert.equal(code, exitCodes[name].code, `expected ${name}\n${why}`);

  before(async () => {
    ensureBuilt();
    w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16 });
    env = w.envAs('scheduler'); // it migrates (ops may only read)
    term = startTerminal();
  });
  after(async () => {
    term?.kill();
    await w?.stop();
  });

  it('one status line rewrites itself, a frozen timer ticks, and a blown downtime budget is loud and exits 6', async () => {
    const cmd = `node ${bin} migrate --ct 101 --from node-a --to node-b --pre-dump off --max-downtime-ms 100 --downtime-policy proceed`;
    term.run('over', cmd, env);
    // Minutes only on a machine far busier than its cores (each emulated tool call starts a Node process).
    const screens = await term.watch('over', (s) => exitLine(s) !== undefined, 300_000);
    const last = screens.at(-1)!;
    const all = last.join('\n');
    if (process.env['HAUL_TEST_SCREENS'])
      writeFileSync(process.env['HAUL_TEST_SCREENS'], screens.map((s) => s.join('\n')).join('\n-----\n'));
    assert.equal(exitOf(last), exitCodes.overBudget.code, all);
    // While it ran: one status line at a time (rewritten in place, never scrolled), with a frozen timer at some point.
    const running = screens.slice(0, -1);
    assert.ok(
      running.some((s) => s.some((l) => statusLine.test(l))),
      `no status line seen:\n${running.map((s) => s.join('\n')).join('\n---\n')}`,
    );
    for (const s of screens) assert.ok(s.filter((l) => statusLine.test(l)).length <= 1, s.join('\n'));
    const frozen = running.flat().filter((l) => statusLine.test(l) && / \| FROZEN \d+\.\ds \| /.test(l));
    assert.ok(
      frozen.length > 0,
      `no frozen timer seen:\n${running.map((s) => s.join('\n')).join('\n---\n')}`,
    );
    // The summary: the outcome, the numbers, and the warning as the last word; the status line is gone.
    assert.match(all, /^Migration succeeded, but its downtime exceeded the budget$/m);
    assert.match(all, /^ {5}downtime is ~\d+\.\d\d s$/m);
    assert.match(all, /^\[final dump\] \d+ pages, [\d.]+ MB in \d+ ms; the CT is frozen$/m);
    assert.match(all, /^\[restore\] the CT runs on node-b/m);
    const warning = last.findIndex((l) =>
      /^WARNING: downtime \d+\.\d\d s exceeded the budget of 0\.10 s/.test(l),
    );
    assert.ok(warning > 0, all);
    assert.ok(!last.some((l) => statusLine.test(l)), `the status line was left behind:\n${all}`);
    assert.doesNotMatch(all, /continue: continue/);
  });

  it('Ctrl-C stops following with 130 and says how to re-attach; haul wait re-attaches, piped: plain lines', async () => {
    term.run('ctrlc', `node ${bin} migrate --ct 101 --from node-b --to node-a`, env);
    const seen = await term.watch('ctrlc', (s) => s.some((l) => statusLine.test(l)), 120_000);
    const id = /^migration (m-[0-9a-f]+)/m.exec(seen.at(-1)!.join('\n'))?.[1];
    assert.ok(id, seen.at(-1)!.join('\n'));
    term.sendKeys('ctrlc', 'C-c');
    const [after] = (await term.watch('ctrlc', (s) => exitLine(s) !== undefined, 30_000)).slice(-1);
    const text = after!.join('\n');
    assert.equal(exitOf(after!), exitCodes.interrupted.code, text);
    assert.match(
      text,
      new RegExp(`stopped following ${id}; the migration goes on: re-attach with: haul wait ${id}`),
    );
    // The migration went on: haul wait follows it to its end. Piped, it prints no control codes.
    const waited = await haul(['wait', id]);
    exits(waited.code, 'completed', waited.err + waited.out);
    assert.match(waited.out, /^Migration succeeded$/m);
    assert.match(waited.out, /^CT 101 node-b→node-a \d+\.\ds \| /m);
    assert.doesNotMatch(waited.out, /[\r\x1b]/);
  });

  it('migrate --detach prints the id and exits 0 once accepted; wait ends with the outcome, 4 for an unknown id', async () => {
    const d = await haul(['migrate', '--ct', '101', '--from', 'node-a', '--to', 'node-b', '--detach']);
    exits(d.code, 'completed', d.err);
    const id = d.out.trim();
    assert.match(id, /^m-[0-9a-f]+$/);
    assert.match(d.err, new RegExp(`haul wait ${id}`));
    const json = await haul(['wait', id, '--json']);
    exits(json.code, 'completed', json.err + json.out.trim().split('\n').at(-1)!);
    assert.equal(
      (JSON.parse(json.out.trim().split('\n').at(-1)!) as { type: string }).type,
      'MigrationCompleted',
    );
    // Already ended: at once, with the same outcome.
    exits((await haul(['wait', id])).code, 'completed', '');
    const unknown = await haul(['wait', 'm-000000000000000000000000']);
    exits(unknown.code, 'rejected', unknown.err);
    assert.match(unknown.err, /HAUL_UNKNOWN_MIGRATION/);
  });
});

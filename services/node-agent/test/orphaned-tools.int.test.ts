import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { until } from '@haul/test';
import { runAgentScript } from './dying-agent.ts';
import { CommandFailedError, createRunner } from '../src/adapters/exec.ts';
import { createToolRecords, endOrphanedTools, type ToolRecord } from '../src/adapters/orphaned-tools.ts';
import { liveProcesses, procStat } from '@haul/bus';

const log = pino({ level: 'silent' });
const root = mkdtempSync(join(tmpdir(), 'haul-orphans-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Live processes (not zombies) whose command line holds `marker`. */
function alive(marker: string): number[] {
  return liveProcesses()
    .map((p) => p.pid)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false; // ended while looked at
      }
    });
}

describe('host tools an agent left running (orphaned-tools.ts)', () => {
  it('given a tool and the child it started still running from an agent that is gone, when an agent starts, then their whole group is ended and the record removed', async () => {
    const dir = join(root, 'running');
    const records = createToolRecords(dir);
    const run = createRunner(log, process.env, undefined, records);
    // Sleeps of a length no other process here has: their command lines (`sleep 600.<pid>1`) find them.
    const marker = `600.${process.pid}`;
    // A tool with a child of its own in its group (as vzctl runs criu): both must end.
    const tool = run('sh', ['-c', `sleep ${marker}1 & exec sleep ${marker}2`], { timeoutMs: 600_000 });
    const ended = tool.then(
      () => 'exited',
      () => 'failed',
    );
    assert.equal(readdirSync(dir).length, 1, 'the running tool is recorded');
    await until(() => alive(marker).length === 2, 'the tool and its child running');
    // The runner's own process stands in for the dead agent: a new agent reads the records it left.
    const gone = await endOrphanedTools({ dir }, log);
    assert.deepEqual(
      gone.map((r) => r.argv[0]),
      ['sh'],
    );
    assert.deepEqual(alive(marker), [], 'no process of the tool is left');
    assert.deepEqual(readdirSync(dir), []);
    assert.equal(await ended, 'failed', 'the tool was killed, not run to its end');
  });

  it('given tools that ended, when an agent starts, then there is nothing recorded and nothing to end', async () => {
    const dir = join(root, 'ended');
    const run = createRunner(log, process.env, undefined, createToolRecords(dir));
    await run('true', [], { timeoutMs: 60_000 });
    await assert.rejects(run('false', [], { timeoutMs: 60_000 }));
    assert.deepEqual(readdirSync(dir), []);
    assert.deepEqual(await endOrphanedTools({ dir }, log), []);
  });

  it('given a record whose pid now names another process (another start time), when an agent starts, then that process is left alone and the record goes', async () => {
    const dir = join(root, 'reused');
    createToolRecords(dir);
    const marker = `601.${process.pid}`;
    // Another group's leader that happens to have the recorded pid.
    const other = spawn('sleep', [marker], { detached: true, stdio: 'ignore' });
    try {
      const pid = other.pid!;
      await until(() => alive(marker).length === 1, 'the other process running');
      writeFileSync(join(dir, String(pid)), JSON.stringify({ pid, start: '1', argv: ['ploop', 'snapshot'] }));
      writeFileSync(join(dir, '999999999'), '{"pid": 9'); // cut short by the agent's death while it was written
      assert.deepEqual(await endOrphanedTools({ dir }, log), []);
      assert.deepEqual(alive(marker), [pid], 'the other process still runs');
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('given a tool that runs to its end (a ploop that changes a device and its descriptor) still running, when an agent starts, then it waits for the tool to end and ends nothing', async () => {
    // Given such a tool, recorded by a runner standing in for the dead agent, that ends on its own a moment later
    const dir = join(root, 'to-its-end');
    const records = createToolRecords(dir);
    const run = createRunner(log, process.env, undefined, records);
    const done = join(root, 'to-its-end-done');
    const tool = run('sh', ['-c', `sleep 0.5; touch ${done}`], {
      timeoutMs: 600_000,
      toItsEnd: true,
    });
    const [rec] = readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as ToolRecord);
    assert.ok(rec?.until !== undefined && rec.until > Date.now(), 'recorded with the time it may run until');

    // When an agent starts
    const ended = await endOrphanedTools({ dir }, log);

    // Then the tool ran to its end first, and nothing was ended
    assert.deepEqual(ended, []);
    assert.equal(existsSync(done), true, 'the tool did its work');
    assert.deepEqual((await tool).exitCode, 0);
    assert.deepEqual(readdirSync(dir), []);
  });

  // The second case without the cap would wait the record's hour: the test's own timeout fails it long before.
  const pastItsTime = [
    {
      name: 'still running past its time, when an agent starts, then it ends it then',
      folder: 'past-its-end',
      tag: 603,
      dueInMs: 300,
      cap: {},
    },
    {
      name: "recorded with a time far ahead (the dead agent's clock), when an agent starts, then it waits no longer than ploop's timeout from now (here 300 ms)",
      folder: 'far-ahead',
      tag: 605,
      dueInMs: 3_600_000,
      cap: { maxWaitMs: 300 },
    },
  ];
  for (const c of pastItsTime)
    it(`given a tool that runs to its end ${c.name}`, { timeout: 60_000 }, async () => {
      // Given a record of such a tool, due `dueInMs` from now, whose process goes on
      const dir = join(root, c.folder);
      createToolRecords(dir);
      const marker = `${c.tag}.${process.pid}`;
      const hung = spawn('sleep', [marker], { detached: true, stdio: 'ignore' });
      try {
        const pid = hung.pid!;
        await until(() => alive(marker).length === 1, 'the hung tool running');
        const rec: ToolRecord = {
          pid,
          start: procStat(pid)!.start,
          argv: ['ploop', 'snapshot'],
          until: Date.now() + c.dueInMs,
        };
        writeFileSync(join(dir, String(pid)), JSON.stringify(rec));

        // When an agent starts, then the tool is ended once its time (or the cap) is over
        assert.deepEqual(
          (await endOrphanedTools({ dir }, log, c.cap)).map((r) => r.pid),
          [pid],
        );
        assert.deepEqual(alive(marker), []);
        assert.deepEqual(readdirSync(dir), []);
      } finally {
        hung.kill('SIGKILL');
      }
    });

  // A wait would last the record's ten minutes: the test's own timeout fails it long before.
  it(
    'given a record of a tool that runs to its end whose pid now names another process, when an agent starts, then it neither waits nor ends that process',
    { timeout: 60_000 },
    async () => {
      // Given a record due far ahead whose pid names another process (another start time)
      const dir = join(root, 'to-its-end-reused');
      createToolRecords(dir);
      const marker = `604.${process.pid}`;
      const other = spawn('sleep', [marker], { detached: true, stdio: 'ignore' });
      try {
        const pid = other.pid!;
        await until(() => alive(marker).length === 1, 'the other process running');
        const rec: ToolRecord = { pid, start: '1', argv: ['ploop', 'snapshot'], until: Date.now() + 600_000 };
        writeFileSync(join(dir, String(pid)), JSON.stringify(rec));

        // When an agent starts, then it goes on, the other process left alone
        assert.deepEqual(await endOrphanedTools({ dir }, log), []);
        assert.deepEqual(alive(marker), [pid]);
        assert.deepEqual(readdirSync(dir), []);
      } finally {
        other.kill('SIGKILL');
      }
    },
  );

  it("given an agent that dies between a tool's spawn and its record, then the tool never runs", async () => {
    // Given a runner in a process of its own whose record of a tool kills that process instead (the agent dies in
    // that moment): it says the tool's pid first
    const dir = join(root, 'unrecorded');
    mkdirSync(dir);
    const ran = join(dir, 'ran');
    const said = join(dir, 'pid');
    const script = `
      import { writeFileSync } from 'node:fs';
      import { pino } from 'pino';
      import { createRunner } from ${JSON.stringify(new URL('../src/adapters/exec.ts', import.meta.url).href)};
      const records = {
        started(pid) { writeFileSync(${JSON.stringify(said)}, String(pid)); process.kill(process.pid, 'SIGKILL'); },
        ended() {},
      };
      await createRunner(pino({ level: 'silent' }), process.env, undefined, records)('touch', [${JSON.stringify(ran)}], { timeoutMs: 60_000 });
    `;
    const died = await runAgentScript(script);
    assert.equal(died, 'SIGKILL');

    // When the gate's shell notices its agent is gone (the end of its input), and ends
    const pid = Number(readFileSync(said, 'utf8'));
    await until(() => !liveProcesses().some((p) => p.pid === pid), "the gate's shell ended");

    // Then the tool never ran
    assert.equal(existsSync(ran), false, 'the unrecorded tool ran');
  });
});

describe('the runner of host tools (exec.ts), once the agent stops', () => {
  it('given the stop begun, when a step asks for a tool, then it is not started: the step fails as cancelled', async () => {
    // Given an agent that began to stop (its abort signal fired) while a step was on its way to its tool
    const dir = join(root, 'stopping');
    const records = createToolRecords(dir);
    const ac = new AbortController();
    ac.abort();
    const ran = join(root, 'stopping-ran');

    // When the step asks for its tool
    const run = createRunner(log, process.env, undefined, records);
    const failed = await run('touch', [ran], { timeoutMs: 60_000, signal: ac.signal }).then(
      () => undefined,
      (err: unknown) => err,
    );

    // Then the tool never ran, and the step fails as cancelled (an abort only reaches a tool already started)
    assert.ok(failed instanceof CommandFailedError, String(failed));
    assert.equal(failed.why, 'cancelled');
    assert.equal(existsSync(ran), false, 'the tool did not run');
    assert.deepEqual(readdirSync(dir), [], 'nothing recorded');
  });

  it('given a tool that runs to its end, when the agent stops while it runs, then it is not cancelled', async () => {
    // Given such a tool running
    const ac = new AbortController();
    const done = join(root, 'stopping-to-its-end');
    const run = createRunner(log, process.env, undefined, createToolRecords(join(root, 'stopping-2')));
    const tool = run('sh', ['-c', `sleep 0.3; touch ${done}`], {
      timeoutMs: 60_000,
      signal: ac.signal,
      toItsEnd: true,
    });

    // When the agent begins to stop
    ac.abort();

    // Then the tool runs to its end
    assert.equal((await tool).exitCode, 0);
    assert.equal(existsSync(done), true);
  });
});

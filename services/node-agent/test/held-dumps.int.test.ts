import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs, { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { until } from '@haul/test';
import { runAgentScript } from './dying-agent.ts';
import { pidAlive, procStat } from '@haul/bus';
import { createHeldDumps, type HeldDumps, type HeldMeta } from '../src/held-dumps.ts';
import { createLeases, type LeaseDeps } from '../src/leases.ts';
import { StepError } from '../src/context.ts';
import { errorCodes } from '@haul/domain';

const root = mkdtempSync(join(tmpdir(), 'haul-held-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('a final dump still under way when the agent that started it died', () => {
  it('given its criu still running before the freeze, when the command comes again, then the agent waits for that dump instead of starting a second one', async () => {
    const stateDir = join(root, 'state');
    // No criu on this PATH: a second dump started here would end at once (sh: criu: not found).
    const held = createHeldDumps(stateDir, pino({ level: 'silent' }), { PATH: '/usr/bin:/bin' });
    const meta: HeldMeta = {
      migrationId: 'm-0123456789abcdef01234567',
      ctid: '101',
      commandId: 'm-0123456789abcdef01234567:finalDump:-:1',
      leaseMs: 10_000,
      frozenAt: new Date().toISOString(),
      workDir: join(root, 'work'),
    };
    // The dump the dead agent started: its folder, and its criu (here a sleep) still running.
    const criu = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    try {
      const dir = held.dirOf(meta.migrationId);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
      writeFileSync(join(dir, 'criu.pid'), String(criu.pid));
      writeFileSync(join(dir, 'criu.log'), 'the first dump writing its images\n');

      const started = held.start(meta, ['dump', '--tree', '4242']);
      // The first dump reaches its post-dump and holds the CT frozen.
      writeFileSync(join(dir, 'frozen'), '');
      await started;

      assert.equal(
        readFileSync(join(dir, 'criu.pid'), 'utf8'),
        String(criu.pid),
        "the first dump's criu is the one held",
      );
      assert.equal(readFileSync(join(dir, 'criu.log'), 'utf8'), 'the first dump writing its images\n');
      assert.equal(held.isHeld(meta.migrationId), true);
    } finally {
      criu.kill('SIGKILL');
    }
  });
});

describe("a final dump's lease after a restart", () => {
  const silent = pino({ level: 'silent' });
  const metaOf = (migrationId: string, leaseMs: number, frozenAt: string): HeldMeta => ({
    migrationId,
    ctid: '101',
    commandId: `${migrationId}:finalDump:-:1`,
    leaseMs,
    frozenAt,
  });
  /** The hold folder of a dump an agent started: its meta, its criu's pid, and `frozen` once the CT is held. */
  const holdFolder = (held: HeldDumps, meta: HeldMeta, pid: string, frozen: boolean): string => {
    const dir = held.dirOf(meta.migrationId);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
    writeFileSync(join(dir, 'criu.pid'), pid);
    if (frozen) writeFileSync(join(dir, 'frozen'), '');
    return dir;
  };
  /** Leases whose resume, and stop of the source's CT, the test says. */
  const leasesOf = (held: HeldDumps, deps: Partial<LeaseDeps>) =>
    createLeases({
      held,
      log: silent,
      resume: () => Promise.reject(new Error('not expected')),
      exclusive: (_m, fn) => fn(),
      stopSource: () => Promise.reject(new Error('not expected')),
      ...deps,
    });

  it('given a dump under way whose command will not come again (its outcome is in the log), then its lease is armed at start and resumes the CT once the dump holds it', async () => {
    const held = createHeldDumps(join(root, 'state-lease'), silent, { PATH: '/usr/bin:/bin' });
    const meta = metaOf('m-lease0000000000000000001', 50, new Date().toISOString());
    const criu = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    let resumed = 0;
    const said: string[] = [];
    const leases = leasesOf(held, {
      log: pino({ level: 'info' }, { write: (line: string) => void said.push(line) }),
      resume: () => Promise.resolve({ actions: [`resumed ${++resumed}`] }),
    });
    try {
      // Given the folder of a dump an agent that died started, its criu running, the CT not frozen yet
      const dir = holdFolder(held, meta, String(criu.pid), false);

      // When an agent starts: it arms the lease of every dump whose criu runs (app.ts), held or not
      assert.deepEqual(
        held.running().map((m) => m.migrationId),
        [meta.migrationId],
      );
      assert.deepEqual(held.list(), [], 'not held yet');
      for (const m of held.running()) leases.arm(m);
      // The lease is due (50 ms) before the freeze: it waits for it. Then the dump reaches its post-dump.
      await until(() => said.some((l) => l.includes('under way')), 'the lease due before the freeze');
      assert.equal(resumed, 0);
      writeFileSync(join(dir, 'frozen'), '');

      // Then the lease resumes the CT (before, it was dropped while not held, and nothing resumed it)
      await until(() => resumed === 1, 'the lease resumed the CT', 10_000);
    } finally {
      leases.stop();
      criu.kill('SIGKILL');
    }
  });

  it('given a dump under way past its own time that no command waits for, then its lease kills it: its tasks run again', async () => {
    // Given the folder of a dump an agent that died started ten minutes ago, its criu still running and the CT never
    // frozen (criu hung after it seized the tasks), its command given up: nothing adopts it
    const held = createHeldDumps(join(root, 'state-hung'), silent, { PATH: '/usr/bin:/bin' });
    const meta = {
      ...metaOf('m-lease0000000000000000012', 50, new Date(Date.now() - 600_000).toISOString()),
      dumpTimeoutMs: 1_000,
    };
    const criu = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    const said: string[] = [];
    const leases = leasesOf(held, {
      log: pino({ level: 'info' }, { write: (line: string) => void said.push(line) }),
    });
    try {
      holdFolder(held, meta, String(criu.pid), false);
      // When its lease is armed (as at an agent's start, for every dump whose criu runs)
      leases.arm(meta);
      // Then criu is killed (before, the lease waited for the freeze for ever, and so did the rollback's resume)
      await until(() => !pidAlive(criu.pid!), 'the hung criu killed', 10_000);
      assert.ok(said.some((l) => l.includes('neither froze the CT nor ended within its time')));
      assert.equal(held.underWay(meta.migrationId), false);
    } finally {
      leases.stop();
      criu.kill('SIGKILL');
    }
  });

  it("given a held dump whose frozenAt is an hour ahead (the clock was set back), then its lease is due within the lease's length from now", async () => {
    const held = createHeldDumps(join(root, 'state-clock'), silent, { PATH: '/usr/bin:/bin' });
    const ahead = new Date(Date.now() + 3_600_000).toISOString();
    const meta = metaOf('m-lease0000000000000000002', 50, ahead);
    const criu = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    let resumed = 0;
    const leases = leasesOf(held, { resume: () => Promise.resolve({ actions: [`resumed ${++resumed}`] }) });
    try {
      holdFolder(held, meta, String(criu.pid), true);
      leases.arm(meta);
      await until(() => resumed === 1, 'the lease resumed the CT', 10_000);
    } finally {
      leases.stop();
      criu.kill('SIGKILL');
    }
  });

  const verdicts = {
    won: { then: 'resumes it at once, winning the fence', id: 4, did: ['resume'] },
    fenced: {
      then: 'stops the CT on the source, the target restore having started',
      id: 5,
      did: ['resume', 'stop'],
    },
    logIncomplete: {
      then: 'stops the CT on the source when its log lost its oldest events (a RestoreStarted maybe among them)',
      id: 9,
      did: ['resume', 'stop'],
    },
  } as const;
  for (const [verdict, { then, id, did: expected }] of Object.entries(verdicts))
    it(`given a held dump whose criu is killed without a decision (its CT runs again on a real host), then the lease ${then}`, async () => {
      const held = createHeldDumps(join(root, `state-killed-${verdict}`), silent, { PATH: '/usr/bin:/bin' });
      // A lease an hour long: only the criu's end can make it fire within the test
      const meta = metaOf(`m-lease000000000000000000${id}`, 3_600_000, new Date().toISOString());
      const criu = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
      const did: string[] = [];
      const said: string[] = [];
      const leases = leasesOf(held, {
        log: pino({ level: 'info' }, { write: (line: string) => void said.push(line) }),
        resume: () => {
          did.push('resume');
          if (verdict === 'won') return Promise.resolve({ actions: [] });
          const code = verdict === 'fenced' ? errorCodes.fenced : errorCodes.logIncomplete;
          return Promise.reject(new StepError(code, `refused (${code})`));
        },
        stopSource: () => Promise.resolve(void did.push('stop')),
      });
      try {
        holdFolder(held, meta, String(criu.pid), true);
        leases.arm(meta);
        // When its criu is killed (no decision written)
        criu.kill('SIGKILL');
        // Then the lease acts at once: the fence won, or the source's CT stopped once it is lost, or once the log
        // no longer tells whether the target restore started, saying so
        await until(() => did.length === expected.length, 'the lease acted', 10_000);
        assert.deepEqual(did, expected);
        if (verdict === 'logIncomplete') assert.ok(said.some((l) => l.includes('no longer whole')));
      } finally {
        leases.stop();
        criu.kill('SIGKILL');
      }
    });

  it("given a held dump this agent started, when its criu is killed, then the lease acts on its sh's end, not at the next look", async () => {
    // A criu that holds the CT at once (post-dump) and waits there; looks an hour apart, a lease an hour long
    const bin = join(root, 'bin-held');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'criu'), '#!/bin/sh\n: > "$HAUL_HOLD_DIR/frozen"\nexec sleep 600\n', {
      mode: 0o755,
    });
    const held = createHeldDumps(join(root, 'state-sh-end'), silent, { PATH: `${bin}:/usr/bin:/bin` });
    const meta = metaOf('m-lease0000000000000000008', 3_600_000, new Date().toISOString());
    let resumed = 0;
    const leases = leasesOf(held, {
      watchMs: 3_600_000,
      resume: () => Promise.resolve({ actions: [`resumed ${++resumed}`] }),
    });
    const sh = () => Number(readFileSync(join(held.dirOf(meta.migrationId), 'criu.pid'), 'utf8'));
    try {
      await held.start(meta, ['dump']);
      leases.arm(meta);
      // When its criu is killed with its group (no decision written)
      process.kill(-sh(), 'SIGKILL');
      // Then the lease resumes the CT on the sh's end (before, only the look every 250 ms saw it)
      await until(() => resumed === 1, 'the lease resumed the CT', 10_000);
    } finally {
      leases.stop();
      try {
        process.kill(-sh(), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });

  it('given a hold folder whose sh is gone, when a resume finds no dump held, then it leaves the abort decision for a criu still waiting there; no folder, nothing', () => {
    const held = createHeldDumps(join(root, 'state-abandon'), silent, { PATH: '/usr/bin:/bin' });
    const meta = metaOf('m-lease0000000000000000006', 50, new Date().toISOString());
    const dir = holdFolder(held, meta, '2147483646', true);
    held.abandon(meta.migrationId);
    assert.equal(held.outcome(meta.migrationId).decision, 'abort');
    held.abandon('m-lease0000000000000000007');
    assert.equal(existsSync(held.dirOf('m-lease0000000000000000007')), false);
    assert.ok(existsSync(dir));
  });

  it('given a held dump whose criu does not end after its decision, then it is killed at its time and the decision ends with no status', async () => {
    // Given a held dump whose criu hangs at post-dump and never reads its decision
    const held = createHeldDumps(join(root, 'state-decided-hung'), silent, { PATH: '/usr/bin:/bin' });
    const meta = metaOf('m-lease0000000000000000013', 60_000, new Date().toISOString());
    const criu = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    try {
      holdFolder(held, meta, String(criu.pid), true);
      // When the commit is decided, with half a second for criu to end
      const rc = await held.decide(meta.migrationId, 'commit', 500);
      // Then criu was killed (before, the decision waited for it for ever, and the migration's lane behind it) and
      // the decision ends with no status, which the release reads as tasks let go
      assert.equal(rc, undefined);
      await until(() => !pidAlive(criu.pid!), 'the hung criu killed', 10_000);
      assert.equal(held.outcome(meta.migrationId).decision, 'commit');
    } finally {
      criu.kill('SIGKILL');
    }
  });

  for (const decision of ['commit', 'abort'] as const)
    it(`given a held dump whose sh is killed without recording criu's status, then its ${decision} decision ends with no status instead of waiting for ever`, async () => {
      const held = createHeldDumps(join(root, `state-no-rc-${decision}`), silent, { PATH: '/usr/bin:/bin' });
      const meta = metaOf(
        `m-lease00000000000000000${decision === 'commit' ? '10' : '11'}`,
        60_000,
        new Date().toISOString(),
      );
      const sh = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
      try {
        holdFolder(held, meta, String(sh.pid), true);
        assert.equal(held.isHeld(meta.migrationId), true);
        const decided = held.decide(meta.migrationId, decision);
        sh.kill('SIGKILL');
        // Bounded, so that the wait it had before fails here instead of holding the file to its budget.
        const hung = new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000).unref());
        assert.equal(await Promise.race([decided, hung]), undefined);
        assert.equal(held.outcome(meta.migrationId).decision, decision);
      } finally {
        sh.kill('SIGKILL');
      }
    });

  it('given a hold folder whose criu.pid is empty (its agent died while it wrote it), then no criu runs there: neither under way nor running', () => {
    const held = createHeldDumps(join(root, 'state-empty'), silent, { PATH: '/usr/bin:/bin' });
    const meta = metaOf('m-lease0000000000000000003', 50, new Date().toISOString());
    holdFolder(held, meta, '', false);
    assert.equal(held.underWay(meta.migrationId), false);
    assert.deepEqual(held.running(), []);
  });
});

/** Held dumps whose `criu` is the sh script `body` (state in state-<name>), and the meta of migrationId's dump. */
function withCriu(name: string, body: string, migrationId: string, workDir: string) {
  const bin = join(root, `bin-${name}`);
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'criu'), `#!/bin/sh\n${body}`, { mode: 0o755 });
  const held = createHeldDumps(join(root, `state-${name}`), pino({ level: 'silent' }), {
    PATH: `${bin}:/usr/bin:/bin`,
  });
  const meta: HeldMeta = {
    migrationId,
    ctid: '101',
    commandId: `${migrationId}:finalDump:-:1`,
    leaseMs: 10_000,
    workDir,
  };
  return { held, meta };
}

describe('a final dump whose criu ends before the freeze', () => {
  it("fails with the end of criu's own log (-o dump.log in the work dir), where criu writes its errors", async () => {
    // Given a criu that logs its error to the work dir's dump.log, says nothing on stderr, and ends with 1
    const workDir = join(root, 'work-ended');
    mkdirSync(workDir, { recursive: true });
    const { held, meta } = withCriu(
      'ended',
      `echo 'Error (criu/cr-dump.c:1): cannot seize the tree' > ${workDir}/dump.log\nexit 1\n`,
      'm-1123456789abcdef01234567',
      workDir,
    );

    // When the final dump is started
    const failed = await held.start(meta, ['dump', '-W', workDir, '-o', 'dump.log']).then(
      () => undefined,
      (e: unknown) => e as { message: string; exitCode: number; stderrTail: string },
    );

    // Then it fails with criu's status and its logged error
    assert.ok(failed, 'the start failed');
    assert.equal(failed.exitCode, 1);
    assert.match(failed.message, /criu dump ended with 1 before the CT was frozen/);
    assert.match(failed.stderrTail, /^Error \(criu\/cr-dump\.c:1\): cannot seize the tree/);
    assert.equal(held.isHeld(meta.migrationId), false);
  });
});

describe('a final dump whose criu hangs before the freeze', () => {
  it('is killed at the step timeout, its group with it, and fails as timed out', async () => {
    // Given a criu that hangs after it started (it records its pid, then sleeps: seized tasks, no post-dump)
    const pidFile = join(root, 'hung-criu.pid');
    const { held, meta } = withCriu(
      'hang',
      `echo $$ > ${pidFile}\nexec sleep 600\n`,
      'm-3123456789abcdef01234567',
      join(root, 'work-hang'),
    );

    // When the final dump is started with a step timeout of 1 s
    const failed = await held.start(meta, ['dump'], 1000).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Then it fails as timed out (before, it waited for ever, and the rollback's resume queued behind it), its criu
    // is gone, and no dump is held or under way
    assert.ok(failed instanceof StepError, String(failed));
    assert.equal(failed.code, errorCodes.toolTimeout);
    assert.match(failed.message, /neither froze CT 101 nor ended within 1000 ms: killed/);
    // (On a busy machine the kill may come before the script wrote its pid: then it never ran.)
    await until(
      () => !existsSync(pidFile) || !pidAlive(Number(readFileSync(pidFile, 'utf8'))),
      'the hung criu is gone',
    );
    assert.equal(held.isHeld(meta.migrationId), false);
    assert.equal(held.underWay(meta.migrationId), false);
  });
});

describe("a hold folder whose criu's pid another process has now", () => {
  it(
    'given the pid alive but with another start time, then no dump is held or under way, and a new one starts',
    { timeout: 60_000 },
    async () => {
      // Given a hold folder that says its criu is a process that runs (a sleep), with the start time of an earlier
      // process that had the pid (its sh was SIGKILLed before it wrote criu.rc), and says the CT is frozen
      const held = createHeldDumps(join(root, 'state-reused'), pino({ level: 'silent' }), {
        PATH: '/usr/bin:/bin',
      });
      const meta: HeldMeta = {
        migrationId: 'm-2123456789abcdef01234567',
        ctid: '101',
        commandId: 'm-2123456789abcdef01234567:finalDump:-:1',
        leaseMs: 10_000,
        workDir: join(root, 'work-reused'),
      };
      const other = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
      try {
        const dir = held.dirOf(meta.migrationId);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
        writeFileSync(join(dir, 'criu.pid'), String(other.pid));
        writeFileSync(join(dir, 'criu.start'), String(Number(procStat(other.pid!)!.start) - 1));
        writeFileSync(join(dir, 'frozen'), '');

        // When it is asked about, and (the CT not frozen yet) the final dump is started again
        const heldBefore = held.isHeld(meta.migrationId);
        assert.equal(heldBefore, false, 'another process taken for the held criu'); // (then, first: see below)
        rmSync(join(dir, 'frozen'));
        const failed = await held.start(meta, ['dump', '--tree', '4242']).then(
          () => undefined,
          (e: unknown) => e as { message: string },
        );

        // Then nothing was held (checked at once above: with the old judgement the start below waits for ever), and
        // a new dump started (no criu on this PATH: it ends at once) instead of waiting for the other process as for
        // a dump still under way
        assert.match(failed?.message ?? '', /criu dump ended with 127 before the CT was frozen/);
      } finally {
        other.kill('SIGKILL');
      }
    },
  );
});

describe('an agent that dies while it records the criu of a final dump it started', () => {
  it(
    'given the agent gone after the spawn, before the gate opens, then criu never runs, and the command delivered again starts a dump',
    { timeout: 60_000 },
    async () => {
      // Given a criu that leaves a mark when it runs, and an agent (a process of its own) that dies right after it
      // wrote the held dump's criu.pid: the record, not yet the release
      const { ran, env } = markingCriu('unrecorded');
      const stateDir = join(root, 'state-unrecorded');
      const meta: HeldMeta = {
        migrationId: 'm-3123456789abcdef01234567',
        ctid: '101',
        commandId: 'm-3123456789abcdef01234567:finalDump:-:1',
        leaseMs: 10_000,
      };
      const script = `
        import fs from 'node:fs';
        import { syncBuiltinESMExports } from 'node:module';
        const write = fs.writeFileSync;
        fs.writeFileSync = (file, ...rest) => {
          write(file, ...rest);
          if (String(file).endsWith('/criu.pid')) process.kill(process.pid, 'SIGKILL');
        };
        syncBuiltinESMExports();
        const { pino } = await import('pino');
        const { createHeldDumps } = await import(${JSON.stringify(new URL('../src/held-dumps.ts', import.meta.url).href)});
        await createHeldDumps(${JSON.stringify(stateDir)}, pino({ level: 'silent' }), ${JSON.stringify(env)})
          .start(${JSON.stringify(meta)}, ['dump', '--tree', '4242']);
      `;
      const died = await runAgentScript(script);
      assert.equal(died, 'SIGKILL');

      // When the gate's shell meets the end of its input and ends
      const held = createHeldDumps(stateDir, pino({ level: 'silent' }), env);
      const dir = held.dirOf(meta.migrationId);
      const sh = Number(readFileSync(join(dir, 'criu.pid'), 'utf8'));
      await until(() => !pidAlive(sh), "the gate's shell ended");

      // Then criu never ran (with the pid written after the spawn, it ran beside the dead agent), nothing is held,
      // and the command delivered again starts a dump of its own (which runs criu: it ends with 1 here)
      assert.equal(existsSync(ran), false, 'criu ran although no agent released it');
      assert.equal(held.isHeld(meta.migrationId), false);
      const failed = await held.start(meta, ['dump', '--tree', '4242']).then(
        () => undefined,
        (e: unknown) => e as { message: string },
      );
      assert.match(failed?.message ?? '', /criu dump ended with 1 before the CT was frozen/);
      assert.equal(readFileSync(ran, 'utf8').trim().split('\n').length, 1, 'the new dump ran criu once');
    },
  );
});

describe('a final dump whose record cannot be written', () => {
  it(
    'given the write of criu.start failing (a full disk), then the start fails, criu never runs, no folder is left, and the next start runs a dump',
    { timeout: 60_000 },
    async () => {
      // Given a criu that leaves a mark when it runs, and the next write of a criu.start failing with ENOSPC
      const { ran, env } = markingCriu('full');
      const held = createHeldDumps(join(root, 'state-full'), pino({ level: 'silent' }), env);
      const meta: HeldMeta = {
        migrationId: 'm-4123456789abcdef01234567',
        ctid: '101',
        commandId: 'm-4123456789abcdef01234567:finalDump:-:1',
        leaseMs: 10_000,
      };
      const write = fs.writeFileSync;
      let sh: number | undefined;
      fs.writeFileSync = (file: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
        if (String(file).endsWith('/criu.start') && sh === undefined) {
          sh = Number(fs.readFileSync(join(held.dirOf(meta.migrationId), 'criu.pid'), 'utf8'));
          throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        }
        return (write as (...a: unknown[]) => void)(file, ...rest);
      };
      syncBuiltinESMExports();
      let failed: { message: string } | undefined;
      try {
        // When the final dump is started
        failed = await held.start(meta, ['dump', '--tree', '4242']).then(
          () => undefined,
          (e: unknown) => e as { message: string },
        );
      } finally {
        fs.writeFileSync = write;
        syncBuiltinESMExports();
      }

      // Then it fails with the write's error, its sh ends at the closed gate without running criu, and no folder says
      // a dump is under way
      assert.match(failed?.message ?? '', /ENOSPC/);
      assert.ok(sh !== undefined);
      await until(() => !pidAlive(sh!), "the gate's shell ended");
      assert.equal(existsSync(ran), false, 'criu ran although its record failed');
      assert.equal(
        existsSync(held.dirOf(meta.migrationId)),
        false,
        'the folder of a dump never started is left',
      );

      // and the command delivered again starts a dump that runs criu, instead of waiting for ever for the first one
      const again = await held.start(meta, ['dump', '--tree', '4242']).then(
        () => undefined,
        (e: unknown) => e as { message: string },
      );
      assert.match(again?.message ?? '', /criu dump ended with 1 before the CT was frozen/);
      assert.equal(readFileSync(ran, 'utf8').trim().split('\n').length, 1);
    },
  );
});

/** A criu (on the PATH of `env`) that appends its pid to `ran` and fails: it leaves a mark each time it runs. */
function markingCriu(name: string): { ran: string; env: NodeJS.ProcessEnv } {
  const bin = join(root, `bin-${name}`);
  const ran = join(root, `criu-ran-${name}`);
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'criu'), `#!/bin/sh\necho "$$" >> ${ran}\nexit 1\n`, { mode: 0o755 });
  return { ran, env: { PATH: `${bin}:/usr/bin:/bin` } };
}

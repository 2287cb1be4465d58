import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CommandFailedError, type Runner } from './exec.ts';
import { createTools, criuLogs, parsePloopList, parseVzctlStatus } from './tools.ts';

void describe('parseVzctlStatus', () => {
  void it('reads a paused CT as running and paused, not as down', () => {
    assert.deepEqual(parseVzctlStatus('VEID 101 exist mounted paused\n'), {
      exist: true,
      mounted: true,
      running: true,
      paused: true,
    });
  });

  void it('reads running, down and suspended as vzctl prints them (VZ7 and later)', () => {
    assert.deepEqual(parseVzctlStatus('VEID 101 exist mounted running\n'), {
      exist: true,
      mounted: true,
      running: true,
      paused: false,
    });
    for (const line of [
      'VEID 101 exist unmounted down',
      'VEID 101 exist unmounted suspended',
      'VEID 101 exist unmounted down suspended',
    ])
      assert.deepEqual(parseVzctlStatus(line), {
        exist: true,
        mounted: false,
        running: false,
        paused: false,
      });
    assert.equal(parseVzctlStatus('VEID 101 deleted unmounted down').exist, false);
  });
});

void describe('ploopDevice reads `ploop info -d` as ploop prints it (tools/ploop.c plooptool_info)', () => {
  const printing =
    (stdout: string): Runner =>
    () =>
      Promise.resolve({ exitCode: 0, stdout, stderr: '' });

  void it('a disk attached: its device and partition', async () => {
    const tools = createTools(printing('device:\t\t/dev/ploop12345\npartition:\t/dev/ploop12345p1\n'));
    assert.deepEqual(await tools.ploopDevice('/dd.xml'), {
      device: '/dev/ploop12345',
      partition: '/dev/ploop12345p1',
    });
  });

  void it('a disk not attached: both empty, the next line not taken for the device', async () => {
    const tools = createTools(printing('device:\t\t\npartition:\t\n'));
    assert.deepEqual(await tools.ploopDevice('/dd.xml'), { device: '', partition: '' });
  });
});

void describe('parsePloopList reads `ploop list` of ploop 9 and ploop 7', () => {
  void it('a device per line, its name and base delta; a further delta (-f) is no device', () => {
    const nine =
      'ploop12345\t/vz/private/101/root.hdd/root.hds\tct101\n\t\t/vz/private/101/root.hdd/top.hds\n' +
      'ploop23456\t/shared/my disks/root.hds\n';
    // ploop 7: "%-12s %s %s %s\n", the mount point empty without -a
    const seven = 'ploop51234   /shared/ct101-data0/root.hds  \n';
    assert.deepEqual(parsePloopList(nine + seven), [
      { device: 'ploop12345', base: '/vz/private/101/root.hdd/root.hds' },
      { device: 'ploop23456', base: '/shared/my disks/root.hds' },
      { device: 'ploop51234', base: '/shared/ct101-data0/root.hds' },
    ]);
    assert.deepEqual(parsePloopList(''), []);
  });
});

void describe("a failed tool's words: criu's log, vzctl restore's stdout", () => {
  const vzFreeze = { freezeCgroup: '/sys/fs/cgroup/freezer/machine.slice/101/', controllers: [] };
  /** A tool that fails with these words, having first written `log` (its own log file) if given. */
  const failing =
    (stdout: string, stderr: string, log?: { file: string; text: string }): Runner =>
    (tool, args) => {
      if (log) writeFileSync(log.file, log.text);
      return Promise.reject(new CommandFailedError([tool, ...args], 1, stderr, 'exit', stdout));
    };

  void it("a failed pre-dump carries the end of criu's own log (-o pre-dump.log), where its errors are", async () => {
    // Given a work dir with an earlier pre-dump's log, and a criu that logs its error there and says nothing on stderr
    const workDir = mkdtempSync(join(tmpdir(), 'haul-tools-'));
    const file = join(workDir, criuLogs.preDump);
    const fail = (tools: ReturnType<typeof createTools>) =>
      tools.criuPreDump(1, '/img/1', workDir, undefined, vzFreeze).then(
        () => undefined,
        (err: unknown) => err,
      );
    try {
      writeFileSync(file, 'Error (criu/cr-dump.c:9): an earlier pre-dump failed\n');
      const logged = { file, text: 'Warn: something\nError (criu/cr-dump.c:1): no such task\n' };

      // When the pre-dump fails
      const e = await fail(createTools(failing('', '', logged)));

      // Then its error says what criu logged, its last line in the message
      assert.ok(e instanceof CommandFailedError);
      assert.equal(e.stderrTail, 'Warn: something\nError (criu/cr-dump.c:1): no such task');
      assert.match(e.message, /exited with 1: Error \(criu\/cr-dump\.c:1\): no such task$/);

      // And a criu that fails before it opens its log does not pass an earlier pre-dump's log for its own
      writeFileSync(file, 'Error (criu/cr-dump.c:9): an earlier pre-dump failed\n');
      const early = await fail(createTools(failing('', 'sh: criu: not found')));
      assert.ok(early instanceof CommandFailedError);
      assert.equal(early.stderrTail, 'sh: criu: not found');
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  void it("a failed restore carries the criu errors vzctl found in its log (stdout), then vzctl's stderr", async () => {
    const tools = createTools(
      failing(
        'Restoring the Container ...\n(00.012345) Error (criu/cr-restore.c:2): bad image\n',
        'The restore log was saved in /img/1/restore.log\nFailed to restore the Container',
      ),
    );
    const e = await tools.vzctlRestore('101', '/img/1').then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(e instanceof CommandFailedError);
    assert.match(e.stderrTail, /Error \(criu\/cr-restore\.c:2\): bad image\nThe restore log was saved in/);
    assert.match(e.message, /Failed to restore the Container$/);
  });
});

void describe('the tool calls that run to their end (RunOptions.toItsEnd)', () => {
  /** Every call's tool, first word and options, each answered with exit 0 and no output. */
  const recording = () => {
    const calls: { call: string; toItsEnd: boolean; okCodes: number[] }[] = [];
    const run: Runner = (tool, args, opts) => {
      calls.push({
        call: `${tool} ${args.find((a) => !a.startsWith('-')) ?? ''}`,
        toItsEnd: opts.toItsEnd === true,
        okCodes: opts.okCodes ?? [],
      });
      return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
    };
    return { calls, tools: createTools(run, new AbortController().signal) };
  };

  void it("vzctl restore and start (the CT's tasks outlive a vzctl cut off half-way), ploop snapshot and snapshot-delete; not a stop or a status", async () => {
    const { calls, tools } = recording();
    await tools.vzctlRestore('101', '/img/1');
    await tools.vzctlStart('101');
    await tools.ploopSnapshot('/dd.xml', '{g}', true);
    await tools.ploopSnapshotDelete('/dd.xml', '{g}');
    await tools.vzctlStop('101');
    await tools.vzctlStatus('101');
    assert.deepEqual(
      calls.map((c) => [c.call, c.toItsEnd]),
      [
        ['vzctl restore', true],
        ['vzctl start', true],
        ['ploop snapshot', true],
        ['ploop snapshot-delete', true],
        ['vzctl stop', false],
        ['vzctl status', false],
      ],
    );
    // A CT already running is still the restore's and the start's answer to a run again (vzctl's 32).
    assert.deepEqual(calls[0]!.okCodes, [32]);
    assert.deepEqual(calls[1]!.okCodes, [32]);
  });
});

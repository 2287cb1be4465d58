/**
 * What a test process, the demo or a bench started is gone however it ends, its folders too: the processes are killed
 * and gone before a folder they write into is removed (test/support/reaper.ts, and the emulated cluster's destroy).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { groupMembers, processLive, procStat } from '@haul/bus';
import { agentStateDir, createEmulatedCluster, repoRoot, until } from '@haul/test';

/** A process that writes into `dir` without a pause, making its folders again as they go: `<dir>/w/<n>/f`. */
const writerSource = (dir: string): string => `
  const { mkdirSync, writeFileSync } = require('node:fs');
  for (let i = 0; ; i++) {
    const d = ${JSON.stringify(dir)} + '/w/' + (i % 64);
    try { mkdirSync(d, { recursive: true }); writeFileSync(d + '/f', String(i)); } catch {}
  }`;

const killQuietly = (pid: number): void => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
};

const gone = (pid: number): boolean => !processLive(pid);

describe('cleanup at exit', () => {
  it(
    'given a folder to remove and a process writing into it, when the test process gets SIGTERM, then both are gone',
    { timeout: 120_000 },
    async () => {
      // Given a process that registers its folder's removal first (as a world does for its emulated cluster), then
      // starts a writer into that folder and registers it to be killed (as a world does for its services)
      const script = `
      import { spawn } from 'node:child_process';
      import { existsSync, mkdtempSync } from 'node:fs';
      import { tmpdir } from 'node:os';
      import { join } from 'node:path';
      import { reapOnExit, removeOnExit } from ${JSON.stringify(join(repoRoot, 'test', 'support', 'reaper.ts'))};
      const dir = mkdtempSync(join(tmpdir(), 'haul-reaper-'));
      removeOnExit(dir);
      const writer = spawn(process.execPath, ['-e', ${JSON.stringify(writerSource('DIR'))}.replace('DIR', dir)], { stdio: 'ignore' });
      reapOnExit(writer.pid);
      const wrote = join(dir, 'w', '63', 'f');
      while (!existsSync(wrote)) await new Promise((r) => setTimeout(r, 10));
      console.log(JSON.stringify({ dir, writer: writer.pid }));
      setInterval(() => {}, 1000);
    `;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const said = await new Promise<{ dir: string; writer: number }>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(JSON.parse(out) as { dir: string; writer: number });
        });
        void exited.then((code) => reject(new Error(`the test process exited ${code} before it was ready`)));
      });

      // When it gets SIGTERM, with the writer at work
      child.kill('SIGTERM');

      // Then it exits 143, its writer is gone, and so is the folder (removed once nothing wrote into it any more; with
      // the removal first, the writer made it again)
      try {
        assert.equal(await exited, 143);
        assert.ok(gone(said.writer), `writer ${said.writer} still runs`);
        assert.equal(existsSync(said.dir), false, `${said.dir} is left`);
      } finally {
        killQuietly(said.writer);
        rmSync(said.dir, { recursive: true, force: true });
      }
    },
  );

  it(
    "given tools an agent recorded, still writing into the node's folder, when the cluster is destroyed, then their groups and the folder are gone",
    { timeout: 120_000 },
    async () => {
      // Given an emulated node whose agent's records name two tools, each the leader of its own group with a writer
      // into the node's folder in it: one still runs, the other has ended and left its writer behind
      const cluster = createEmulatedCluster('haul-reaper-');
      await cluster.addNode('node-a');
      const root = cluster.nodeRoot('node-a');
      const tools = join(agentStateDir(root), 'tools');
      mkdirSync(tools, { recursive: true });
      const tool = (name: string) => {
        const leader = spawn('/bin/sh', ['-c', 'node -e "$WRITER" & read -r _'], {
          detached: true,
          stdio: ['pipe', 'ignore', 'ignore'],
          env: { ...process.env, WRITER: writerSource(join(root, name)) },
        });
        const pid = leader.pid!;
        writeFileSync(
          join(tools, String(pid)),
          JSON.stringify({ pid, start: procStat(pid)!.start, argv: ['sh'] }),
        );
        return { leader, pid };
      };
      const running = tool('a');
      const ended = tool('b');
      const leaderGone = new Promise((resolve) => ended.leader.once('exit', resolve));
      ended.leader.stdin.end('\n');
      await leaderGone;
      await until(
        () => groupMembers(running.pid).length === 2 && groupMembers(ended.pid).length === 1,
        'both tool groups writing',
      );

      try {
        // When the cluster is destroyed
        cluster.destroy();

        // Then both groups were gone before the folder went (else a writer would have made it again)
        assert.deepEqual(groupMembers(running.pid), []);
        assert.deepEqual(groupMembers(ended.pid), []);
        assert.equal(existsSync(cluster.dir), false, `${cluster.dir} is left`);
      } finally {
        for (const { pid } of [running, ended]) killQuietly(-pid); // a destroy that missed one leaves no writer behind
        rmSync(cluster.dir, { recursive: true, force: true });
      }
    },
  );
});

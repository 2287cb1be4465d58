/**
 * What a test process, the demo or a bench started is gone however it ends, its folders too: the processes are killed
 * and gone before a folder they write into is removed (test/support/reaper.ts, and the emulated cluster's destroy).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { procStat } from '@haul/bus';
import { agentStateDir, createEmulatedCluster, repoRoot } from '@haul/test';

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

const gone = (pid: number): boolean => {
  const st = procStat(pid);
  return st === undefined || st.state === 'Z';
};

describe('cleanup at exit', () => {
  it('given a folder to remove and a process writing into it, when the test process gets SIGTERM, then both are gone', async () => {
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
    const said = await new Promise<{ dir: string; writer: number }>((resolve) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(JSON.parse(out) as { dir: string; writer: number });
      });
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

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
  });

  it("given a tool an agent recorded, still writing into the node's folder, when the cluster is destroyed, then the tool's group and the folder are gone", async () => {
    // Given an emulated node whose agent's record names a tool (the leader of its own group) that writes into the
    // node's folder
    const cluster = createEmulatedCluster('haul-reaper-');
    await cluster.addNode('node-a');
    const root = cluster.nodeRoot('node-a');
    const tool = spawn(process.execPath, ['-e', writerSource(join(root, 'scratch'))], {
      detached: true,
      stdio: 'ignore',
    });
    const pid = tool.pid!;
    const tools = join(agentStateDir(root), 'tools');
    mkdirSync(tools, { recursive: true });
    writeFileSync(
      join(tools, String(pid)),
      JSON.stringify({ pid, start: procStat(pid)!.start, argv: ['node'] }),
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      tool.once('exit', (_c, sig) => resolve(sig)),
    );

    try {
      // When the cluster is destroyed
      cluster.destroy();

      // Then the tool was killed and was gone before the folder went (else it would have made the folder again)
      assert.equal(await exited, 'SIGKILL');
      assert.equal(existsSync(cluster.dir), false, `${cluster.dir} is left`);
    } finally {
      killQuietly(-pid); // a destroy that missed it leaves no writer behind
      rmSync(cluster.dir, { recursive: true, force: true });
    }
  });
});

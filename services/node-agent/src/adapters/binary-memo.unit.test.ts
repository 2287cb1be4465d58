import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { CommandFailedError, type Runner } from './exec.ts';
import { binaryIdentity, withBinaryMemo } from './binary-memo.ts';
import { criuFactCalls } from './tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-binary-memo-'));
const env = { PATH: `${join(dir, 'missing')}:${dir}` };
const criu = join(dir, 'criu');
const writeCriu = (text: string, path = criu) => {
  writeFileSync(path, `#!/bin/sh\n# ${text}\n`);
  chmodSync(path, 0o755);
};
after(() => rmSync(dir, { recursive: true, force: true }));

/** A runner that answers from a script and records every command line it was asked. */
function scripted(answer: (argv: string[]) => Awaited<ReturnType<Runner>>) {
  const asked: string[][] = [];
  const run: Runner = (tool, args) => {
    asked.push([tool, ...args]);
    return Promise.resolve(answer([tool, ...args]));
  };
  return { asked, run };
}
const ok = (stdout: string) => ({ exitCode: 0, stdout, stderr: '' });
const opts = { timeoutMs: 1000 };
const [versionTool, ...versionArgs] = criuFactCalls.version;

describe("criu's facts, kept while its binary is unchanged", () => {
  beforeEach(() => writeCriu('criu 3.15'));

  it('given the same binary, when the version is asked twice, then criu runs once and both get its answer', async () => {
    const { asked, run } = scripted(() => ok('Version: 3.15\n'));
    const memo = withBinaryMemo(run, env, Object.values(criuFactCalls));
    const a = await memo(versionTool, versionArgs, opts);
    const b = await memo(versionTool, versionArgs, opts);
    assert.deepEqual([a.stdout, b.stdout], ['Version: 3.15\n', 'Version: 3.15\n']);
    assert.equal(asked.length, 1);
  });

  it('given an upgrade (a new file renamed over the old one), when asked again, then criu runs again', async () => {
    let version = '3.15';
    const { asked, run } = scripted(() => ok(`Version: ${version}\n`));
    const memo = withBinaryMemo(run, env, Object.values(criuFactCalls));
    await memo(versionTool, versionArgs, opts);
    writeCriu('criu 3.19', `${criu}.dpkg-new`);
    renameSync(`${criu}.dpkg-new`, criu);
    version = '3.19';
    assert.equal((await memo(versionTool, versionArgs, opts)).stdout, 'Version: 3.19\n');
    assert.equal(asked.length, 2);
  });

  it('given the binary rewritten in place (a new modification time), when asked again, then criu runs again', async () => {
    const { asked, run } = scripted(() => ok('Version: 3.15\n'));
    const memo = withBinaryMemo(run, env, Object.values(criuFactCalls));
    await memo(versionTool, versionArgs, opts);
    utimesSync(criu, new Date(), new Date(Date.now() + 5000));
    await memo(versionTool, versionArgs, opts);
    assert.equal(asked.length, 2);
  });

  it("keeps the memory tracking check's answer, an exit status 1 (no tracking) as well as 0", async () => {
    const { asked, run } = scripted(() => ({ exitCode: 1, stdout: '', stderr: 'not supported' }));
    const memo = withBinaryMemo(run, env, Object.values(criuFactCalls));
    const [tool, ...args] = criuFactCalls.memTrack;
    assert.equal((await memo(tool, args, opts)).exitCode, 1);
    assert.equal((await memo(tool, args, opts)).exitCode, 1);
    assert.equal(asked.length, 1);
  });

  it('given a call that failed (it threw), when asked again, then criu runs again', async () => {
    let fail = true;
    const asked: string[][] = [];
    const run: Runner = (tool, args) => {
      asked.push([tool, ...args]);
      if (fail) return Promise.reject(new CommandFailedError([tool, ...args], undefined, '', 'timeout'));
      return Promise.resolve(ok('Version: 3.15\n'));
    };
    const memo = withBinaryMemo(run, env, Object.values(criuFactCalls));
    await assert.rejects(memo(versionTool, versionArgs, opts), CommandFailedError);
    fail = false;
    assert.equal((await memo(versionTool, versionArgs, opts)).stdout, 'Version: 3.15\n');
    assert.equal(asked.length, 2);
  });

  it('runs every call that is not listed, and every call when PATH finds no such binary', async () => {
    const { asked, run } = scripted(() => ok(''));
    const memo = withBinaryMemo(run, env, Object.values(criuFactCalls));
    await memo('criu', ['check'], opts);
    await memo('criu', ['check'], opts);
    const nowhere = withBinaryMemo(run, { PATH: join(dir, 'missing') }, Object.values(criuFactCalls));
    await nowhere(versionTool, versionArgs, opts);
    await nowhere(versionTool, versionArgs, opts);
    assert.equal(asked.length, 4);
  });

  it('finds the binary as PATH does: the first folder that has an executable file of that name', () => {
    assert.match(binaryIdentity('criu', env) ?? '', new RegExp(`^${criu}:`));
    chmodSync(criu, 0o644);
    assert.equal(binaryIdentity('criu', env), undefined, 'not executable: not found');
  });
});

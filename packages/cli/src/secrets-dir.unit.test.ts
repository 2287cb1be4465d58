import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { writeSecretsFile } from './secrets-dir.ts';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'haul-secrets-dir-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The file system calls writeSecretsFile makes, in order: which path an fd was opened on, fsyncs and renames. */
function traceFs(t: TestContext): string[] {
  const trace: string[] = [];
  const paths = new Map<number, string>();
  const openSync = fs.openSync;
  const fsyncSync = fs.fsyncSync;
  const renameSync = fs.renameSync;
  t.mock.method(fs, 'openSync', (path: string, ...rest: [string, number?]) => {
    const fd = openSync(path, ...rest);
    paths.set(fd, path);
    return fd;
  });
  t.mock.method(fs, 'fsyncSync', (fd: number) => {
    trace.push(`fsync ${paths.get(fd)}`);
    fsyncSync(fd);
  });
  t.mock.method(fs, 'renameSync', (from: string, to: string) => {
    trace.push(`rename ${from} ${to}`);
    renameSync(from, to);
  });
  syncBuiltinESMExports();
  t.after(() => {
    t.mock.restoreAll();
    syncBuiltinESMExports();
  });
  return trace;
}

describe('writing a file of the secrets folder', () => {
  it('given a file, then its data is fsynced before the rename, and the folder after it', (t) => {
    const trace = traceFs(t);
    const path = join(dir, 'identities.json');
    writeSecretsFile(path, '{}\n', 0o644);
    const tmp = `${path}.${process.pid}.tmp`;
    assert.deepEqual(trace, [`fsync ${tmp}`, `rename ${tmp} ${path}`, `fsync ${dir}`]);
    assert.equal(fs.readFileSync(path, 'utf8'), '{}\n');
  });

  it('given an older file with a wider mode, then it is replaced with exactly the mode asked, whatever the umask', () => {
    const path = join(dir, 'agent@node-a.nk');
    fs.writeFileSync(path, 'old', { mode: 0o666 });
    fs.chmodSync(path, 0o666);
    const umask = process.umask(0);
    try {
      writeSecretsFile(path, 'SUnew\n', 0o600);
    } finally {
      process.umask(umask);
    }
    assert.equal(fs.statSync(path).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(path, 'utf8'), 'SUnew\n');
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });
});

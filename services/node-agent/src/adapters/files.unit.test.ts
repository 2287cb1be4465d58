import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeNew } from './files.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('writeNew', () => {
  it('writes the body into a new file with the mode asked for, over what a lost run left', () => {
    const f = join(dir, 'plain');
    writeFileSync(f, 'left by a lost run, longer than the body');
    writeNew(f, 'body', 0o600);
    assert.equal(readFileSync(f, 'utf8'), 'body');
    assert.equal(lstatSync(f).mode & 0o777, 0o600);
  });

  it('removes a symlink in its place instead of writing through it', () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'not to be touched');
    const f = join(dir, 'link');
    symlinkSync(target, f);
    writeNew(f, 'body', 0o644);
    assert.equal(readFileSync(target, 'utf8'), 'not to be touched');
    assert.ok(lstatSync(f).isFile());
    assert.equal(readFileSync(f, 'utf8'), 'body');
  });
});

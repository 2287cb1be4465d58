import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { createLogger } from '@haul/bus';
import { checkManifest, UnsafeManifestError, type ManifestEntry } from '../src/manifest.ts';
import { PartFile, partPathOf } from '../src/part-file.ts';
import { createReceiver, type IntentCheck } from '../src/receiver.ts';

/** Confinement alone: every offer is taken as intended. */
const allIntended: IntentCheck = () => Promise.resolve(undefined);

const log = createLogger('confine-test', undefined, { HAUL_LOG_LEVEL: 'silent' });
const base = realpathSync(mkdtempSync(join(tmpdir(), 'haul-confine-')));
let n = 0;
let root: string;
let outside: string;
let victim: string;

beforeEach(() => {
  const t = join(base, String(n++));
  root = join(t, 'root');
  outside = join(t, 'outside');
  mkdirSync(join(root, 'img'), { recursive: true });
  mkdirSync(outside, { recursive: true });
  victim = join(outside, 'victim');
  writeFileSync(victim, 'precious');
});
after(() => rmSync(base, { recursive: true, force: true }));

/** The field a refused manifest names (fails the test if it is accepted). */
function refusedField(manifest: ManifestEntry[], targetDir: string): string {
  try {
    checkManifest(manifest, targetDir, [root]);
  } catch (err) {
    assert.ok(err instanceof UnsafeManifestError, String(err));
    return err.field;
  }
  assert.fail('the manifest was accepted');
}

describe("the receiver's own files beside a file of the copy", () => {
  for (const suffix of ['.haul-part', '.haul-sums', '.haul-writeback-failed'])
    it(`a manifest path ending in ${suffix} is refused, naming it: the receiver would take it for its own file beside another`, () => {
      const manifest: ManifestEntry[] = [
        { path: 'root.hds', kind: 'file', size: 4 },
        { path: `root.hds${suffix}`, kind: 'file', size: 4 },
      ];
      assert.equal(refusedField(manifest, join(root, 'img', 'own')), 'manifest.1.path');
    });
});

describe('the receiver confines every path to its root', () => {
  it('refuses a path that goes through a link of the same manifest (t/up -> .., repeated)', () => {
    const target = join(root, 'img', 'x');
    const manifest: ManifestEntry[] = [
      { path: 't', kind: 'dir' },
      { path: 't/up', kind: 'symlink', linkTarget: '..' },
      { path: 't/up/up', kind: 'symlink', linkTarget: '..' },
      { path: 't/up/up/up/escape.img', kind: 'file', size: 4 },
    ];
    assert.equal(refusedField(manifest, target), 'manifest.2.path');
  });

  it('refuses a link whose target only looks inside: a chain through another link of the manifest', () => {
    // `b -> a/..` is lexically `.`, but `a` is `..`, so b resolves to the root's parent.
    const manifest: ManifestEntry[] = [
      { path: 'a', kind: 'symlink', linkTarget: '..' },
      { path: 'b', kind: 'symlink', linkTarget: 'a/..' },
    ];
    assert.equal(refusedField(manifest, join(root, 'x')), 'manifest.1.linkTarget');
  });

  it('refuses a link chain that loops', () => {
    const manifest: ManifestEntry[] = [
      { path: 'a', kind: 'symlink', linkTarget: 'b' },
      { path: 'b', kind: 'symlink', linkTarget: 'a' },
    ];
    assert.equal(refusedField(manifest, join(root, 'img', 'x')), 'manifest.0.linkTarget');
  });

  it('refuses a link that leaves through a link already on the disk', () => {
    symlinkSync(outside, join(root, 'img', 'elsewhere'));
    const manifest: ManifestEntry[] = [{ path: 'p', kind: 'symlink', linkTarget: '../elsewhere' }];
    assert.equal(refusedField(manifest, join(root, 'img', 'x')), 'manifest.0.linkTarget');
  });

  it('accepts the parent link of an image iteration (a sibling folder inside the root)', () => {
    mkdirSync(join(root, 'img', 'haul-mig', '1'), { recursive: true });
    const manifest: ManifestEntry[] = [
      { path: 'pages-1.img', kind: 'file', size: 3 },
      { path: 'parent', kind: 'symlink', linkTarget: '../1' },
    ];
    const r = checkManifest(manifest, join(root, 'img', 'haul-mig', '2'), [root]);
    assert.equal(r.dir, join(root, 'img', 'haul-mig', '2'));
  });

  it('refuses a link that steps back out of a name that is nothing yet: a later link there would take it elsewhere', () => {
    // Given transfer A into img/m/2, whose link walks into img/m/1/x (nothing there) and back out three times: on
    // its own it stays inside the root
    mkdirSync(join(root, 'img', 'm', '1'), { recursive: true });
    const a: ManifestEntry[] = [{ path: 'parent', kind: 'symlink', linkTarget: '../1/x/../../../etc' }];
    // Then it is refused (before, it was placed; transfer B into img/m/1 could then place x -> ../.., each link judged
    // alone inside the root, and img/m/2/parent led out of it)
    assert.equal(refusedField(a, join(root, 'img', 'm', '2')), 'manifest.0.linkTarget');
    const b: ManifestEntry[] = [{ path: 'x', kind: 'symlink', linkTarget: '../..' }];
    assert.equal(checkManifest(b, join(root, 'img', 'm', '1'), [root]).dir, join(root, 'img', 'm', '1'));
    // And stepping back out of a folder the transfer makes, or one on the disk, is taken
    const own: ManifestEntry[] = [
      { path: 'sub/f', kind: 'file', size: 1 },
      { path: 'up', kind: 'symlink', linkTarget: 'sub/../../1' },
    ];
    assert.equal(checkManifest(own, join(root, 'img', 'm', '3'), [root]).dir, join(root, 'img', 'm', '3'));
  });

  it('refuses a path through a link a previous transfer left (t/up -> .. on the disk)', () => {
    const target = join(root, 'img', 'x');
    mkdirSync(join(target, 't'), { recursive: true });
    symlinkSync('..', join(target, 't', 'up'));
    const manifest: ManifestEntry[] = [{ path: 't/up/up/escape.img', kind: 'file', size: 4 }];
    assert.equal(refusedField(manifest, target), 'manifest.0.path');
  });

  it('refuses a file whose own path is a link on the disk, and a folder that is one', () => {
    const target = join(root, 'img', 'x');
    mkdirSync(target, { recursive: true });
    symlinkSync(victim, join(target, 'empty.img'));
    symlinkSync(outside, join(target, '1'));
    assert.equal(refusedField([{ path: 'empty.img', kind: 'file', size: 0 }], target), 'manifest.0.path');
    assert.equal(refusedField([{ path: '1', kind: 'dir' }], target), 'manifest.0.path');
    assert.equal(refusedField([{ path: '1/pages.img', kind: 'file', size: 1 }], target), 'manifest.0.path');
  });

  it('refuses a target folder reached through a link, and creates nothing', async () => {
    symlinkSync(outside, join(root, 'img', 'away'));
    const connect = { host: '127.0.0.1', port: 9, token: 'ab'.repeat(16) };
    const registry = () =>
      Promise.resolve({
        node: 'node-a',
        service: 'image-streamer' as const,
        time: new Date().toISOString(),
        dataHost: connect.host,
        dataPort: connect.port,
        tls: false,
      });
    const offer = {
      transferId: 't1',
      migrationId: 'mig-conf01',
      fromNode: 'node-a',
      targetDir: join(root, 'img', 'away', 'x'),
      connect,
      manifest: [{ path: 'd', kind: 'dir' as const }],
    };
    const reply = await createReceiver({ allowedRoots: [root], log, registry, intended: allIntended }).accept(
      offer,
    );
    assert.equal(reply.ok, false);
    assert.equal('error' in reply && reply.error.code, 'HAUL_UNSAFE_MANIFEST');
    assert.equal('error' in reply && reply.error.field, 'targetDir');
    assert.throws(() => realpathSync(join(outside, 'x')), /ENOENT/);
  });

  it('never writes through a link planted at a part file: a fresh one replaces it, a resumed one fails', () => {
    const p = join(root, 'img', 'f.img');
    symlinkSync(victim, partPathOf(p));
    const f = new PartFile(p, 3, 0o644, 0);
    f.write(0, Buffer.from('new'), 0);
    f.close();
    assert.equal(readFileSync(victim, 'utf8'), 'precious');
    rmSync(partPathOf(p));
    symlinkSync(victim, partPathOf(p));
    assert.throws(() => new PartFile(p, 3, 0o644, 1), /ELOOP/);
    assert.equal(readFileSync(victim, 'utf8'), 'precious');
  });
});

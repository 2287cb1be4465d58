import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensureBuilt, repoRoot } from '@haul/test';

/** Every program's bundle (scripts/build.mjs): the services', the CLI's and the emulators'. */
function bundles(): string[] {
  const inDist = (dir: string, ext: string) =>
    readdirSync(join(repoRoot, dir))
      .filter((f) => f.endsWith(ext))
      .map((f) => join(dir, f));
  return [
    ...['coordinator', 'node-agent', 'image-streamer'].flatMap((s) => inDist(`services/${s}/dist`, '.mjs')),
    ...inDist('packages/cli/dist', '.mjs'),
    ...inDist('host-emulators/dist', '.cjs'),
  ];
}

describe('the programs’ bundles', () => {
  it('given a build, then every bundle is ASCII: V8 holds it as a one-byte string (scripts/ascii-only.mjs)', () => {
    ensureBuilt();
    const all = bundles();
    assert.ok(all.length >= 12, `only ${all.join(', ')}`);
    for (const file of all) {
      const bytes = readFileSync(join(repoRoot, file));
      const at = bytes.findIndex((b) => b > 0x7f);
      assert.equal(at, -1, `${file}: a byte beyond ASCII at ${at}`);
    }
  });
});

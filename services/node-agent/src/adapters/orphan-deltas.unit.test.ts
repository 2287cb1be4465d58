import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TOPDELTA } from './descriptor.ts';
import { deltaPattern, sweepOrphanDeltas } from './orphan-deltas.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-orphan-deltas-'));
after(() => rmSync(root, { recursive: true, force: true }));

const G1 = '{6a0c2a41-0b51-4f0e-9d3b-000000000001}';
const G2 = '{6a0c2a41-0b51-4f0e-9d3b-000000000002}';
const BASE = '{11111111-2222-4333-8444-555555555555}';
const delta = (n: number) => `root.hds.{0f4c9a7e-1b2d-4c3e-8f5a-${String(n).padStart(12, '0')}}`;

const NONE = '{00000000-0000-0000-0000-000000000000}';
/** A descriptor of a chain of images, base first: each image's snapshot the child of the one before (as ploop's). */
const descriptor = (images: [string, string][]) =>
  [
    '<?xml version="1.0"?>',
    '<Parallels_disk_image><StorageData><Storage>',
    ...images.map(([g, f]) => `<Image><GUID>${g}</GUID><Type>Compressed</Type><File>${f}</File></Image>`),
    `</Storage></StorageData><Snapshots><TopGUID>${TOPDELTA}</TopGUID>`,
    ...images.map(
      ([g], i) => `<Shot><GUID>${g}</GUID><ParentGUID>${images[i - 1]?.[0] ?? NONE}</ParentGUID></Shot>`,
    ),
    '</Snapshots></Parallels_disk_image>',
    '',
  ].join('\n');

/** A disk folder with its descriptor (base root.hds only) and these files. */
function disk(name: string, files: string[]): { dir: string; ddxml: string } {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const ddxml = join(dir, 'DiskDescriptor.xml');
  writeFileSync(ddxml, descriptor([[TOPDELTA, 'root.hds']]));
  for (const f of ['root.hds', ...files]) writeFileSync(join(dir, f), '');
  return { dir, ddxml };
}

describe('the orphan-delta sweep, against what ploop stores while it adds a delta', () => {
  it('keeps the delta of a snapshot under way that holds no lock it sees (ploop 9), and removes a true orphan', () => {
    // Given another tool's snapshot between creating its delta and renaming DiskDescriptor.xml.tmp over the
    // descriptor (ploop 9 locks with fcntl(2), which the sweep's flock does not exclude), and an orphan beside it
    const { dir, ddxml } = disk('under-way', [delta(1), delta(2)]);
    const foreign = '{99999999-8888-4777-8666-555555555555}';
    writeFileSync(
      `${ddxml}.tmp`,
      descriptor([
        [foreign, 'root.hds'],
        [TOPDELTA, delta(1)],
      ]),
    );

    // When the sweep runs
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, G1, actions);

    // Then the snapshot's delta and its .tmp stay; only the orphan goes
    assert.deepEqual(actions, [`removed orphan delta ${delta(2)}`]);
    assert.ok(existsSync(join(dir, delta(1))));
    assert.ok(existsSync(`${ddxml}.tmp`));
  });

  it("removes this migration's offline snapshot of the origin cut short: its .tmp and its new delta", () => {
    // Given the origin's snapshot (G1) killed after it created its delta, before its rename
    const { dir, ddxml } = disk('ours-cut-short', [delta(3)]);
    writeFileSync(
      `${ddxml}.tmp`,
      descriptor([
        [G1, 'root.hds'],
        [TOPDELTA, delta(3)],
      ]),
    );

    // When the sweep runs
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, G1, actions);

    // Then both are gone, and the disk is as before the snapshot
    assert.deepEqual(actions, [
      "removed DiskDescriptor.xml.tmp, left by this migration's snapshot of the origin cut short",
      `removed orphan delta ${delta(3)}`,
    ]);
    assert.deepEqual(readdirSync(dir).sort(), ['DiskDescriptor.xml', 'root.hds']);
  });

  it("keeps what the copy and its .tmp name: the source's delta after an online snapshot of the copy cut short", () => {
    // Given the origin snapshotted (G1, its delta 4 in DiskDescriptor.xml), the copy's online snapshot (G2) cut short
    // after its device was switched to delta 5, before its rename, and an orphan (delta 10)
    const { dir, ddxml } = disk('copy', [delta(4), delta(5), delta(10)]);
    writeFileSync(`${ddxml}.copy`, descriptor([[TOPDELTA, 'root.hds']]));
    writeFileSync(
      ddxml,
      descriptor([
        [G1, 'root.hds'],
        [TOPDELTA, delta(4)],
      ]),
    );
    writeFileSync(
      `${ddxml}.copy.tmp`,
      descriptor([
        [G2, 'root.hds'],
        [TOPDELTA, delta(5)],
      ]),
    );

    // When the sweep runs
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, G1, actions);

    // Then only the orphan goes: the copy's .tmp and the delta the source's device may write stay
    assert.deepEqual(actions, [`removed orphan delta ${delta(10)}`]);
    assert.deepEqual(readdirSync(dir).sort(), [
      'DiskDescriptor.xml',
      'DiskDescriptor.xml.copy',
      'DiskDescriptor.xml.copy.tmp',
      'root.hds',
      delta(4),
      delta(5),
    ]);
  });

  it("keeps a later snapshot's delta whose chain names G1 lower down: only G1's own store is this migration's", () => {
    // Given the origin's snapshot G1 done (delta 11 on top of it), and an operator's snapshot on top of that under way
    const { dir, ddxml } = disk('later-snapshot', [delta(11), delta(12)]);
    const operators = '{77777777-8888-4777-8666-555555555555}';
    writeFileSync(
      ddxml,
      descriptor([
        [G1, 'root.hds'],
        [TOPDELTA, delta(11)],
      ]),
    );
    writeFileSync(
      `${ddxml}.tmp`,
      descriptor([
        [G1, 'root.hds'],
        [operators, delta(11)],
        [TOPDELTA, delta(12)],
      ]),
    );

    // When the sweep runs (the target's, at mergeOrigin)
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, G1, actions);

    // Then nothing is removed
    assert.deepEqual(actions, []);
    assert.deepEqual(readdirSync(dir).sort(), [
      'DiskDescriptor.xml',
      'DiskDescriptor.xml.tmp',
      'root.hds',
      delta(11),
      delta(12),
    ]);
  });

  it('removes nothing while a .tmp cannot be read whole, and says why', () => {
    // Given a descriptor being stored in place (its .tmp cut short) and a delta no stored descriptor names
    const { dir, ddxml } = disk('half-stored', [delta(6)]);
    writeFileSync(`${ddxml}.tmp`, descriptor([[TOPDELTA, delta(6)]]).slice(0, 120));

    // When the sweep runs
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, G1, actions);

    // Then the delta stays
    assert.equal(actions.length, 1);
    assert.match(actions[0]!, /^removed no delta: DiskDescriptor\.xml\.tmp cannot be read whole \(/);
    assert.ok(existsSync(join(dir, delta(6))));
  });

  it('looks beside the base image, where ploop makes the deltas, when the descriptor names it in another folder', () => {
    // Given a descriptor naming its base ../images/root.hds, with a named delta and an orphan beside that base
    const { dir, ddxml } = disk('elsewhere', []);
    const images = join(dir, '..', 'elsewhere-images');
    mkdirSync(images, { recursive: true });
    for (const f of ['root.hds', delta(7), delta(8)]) writeFileSync(join(images, f), '');
    writeFileSync(
      ddxml,
      descriptor([
        [BASE, '../elsewhere-images/root.hds'],
        [TOPDELTA, `../elsewhere-images/${delta(7)}`],
      ]),
    );

    // When the sweep runs
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, G1, actions);

    // Then the orphan there goes, the named delta stays
    assert.deepEqual(actions, [`removed orphan delta ${delta(8)}`]);
    assert.deepEqual(readdirSync(images).sort(), ['root.hds', delta(7)]);
  });

  it("names deltas as ploop does: the base's name with a trailing .{…} cut off, then .{GUID}", () => {
    const p = deltaPattern('/vz/root.hdd/root.hds.{0f4c9a7e-1b2d-4c3e-8f5a-000000000001}');
    assert.ok(p.test(delta(9)));
    assert.ok(!p.test(`${delta(9)}.{0f4c9a7e-1b2d-4c3e-8f5a-000000000002}`));
    assert.ok(deltaPattern('/vz/root.hdd/root.hds').test(delta(9)));
    assert.ok(!deltaPattern('/vz/root.hdd/root.hds').test('root.hds.tmp'));
  });
});

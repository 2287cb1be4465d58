import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseDescriptorView, TOPDELTA } from './descriptor.ts';
import {
  cutShortSnapshot,
  deltaPattern,
  fsIo,
  readStoreTmp,
  removeIfSame,
  settleCutShort,
  sweepOrphanDeltas,
  type SweepIo,
} from './orphan-deltas.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-orphan-deltas-'));
after(() => rmSync(root, { recursive: true, force: true }));

const G1 = '{6a0c2a41-0b51-4f0e-9d3b-000000000001}';
const BASE = '{11111111-2222-4333-8444-555555555555}';
const OTHER = '{99999999-8888-4777-8666-555555555555}';
const NONE = '{00000000-0000-0000-0000-000000000000}';
const delta = (n: number) => `root.hds.{0f4c9a7e-1b2d-4c3e-8f5a-${String(n).padStart(12, '0')}}`;

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
const view = (images: [string, string][]) =>
  parseDescriptorView(descriptor(images), '/vz/d/DiskDescriptor.xml');

/** A disk folder with its descriptor (base root.hds only) and these files. */
function disk(name: string, files: string[]): { dir: string; ddxml: string } {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const ddxml = join(dir, 'DiskDescriptor.xml');
  writeFileSync(ddxml, descriptor([[TOPDELTA, 'root.hds']]));
  for (const f of ['root.hds', ...files]) writeFileSync(join(dir, f), '');
  return { dir, ddxml };
}

describe('the orphan-delta sweep, run between the steps of a ploop snapshot that holds no lock it sees (ploop 9)', () => {
  // The snapshot's steps, as ploop takes them (do_create_snapshot): store DiskDescriptor.xml.tmp naming the new
  // delta, make the delta, rename the .tmp over the descriptor. The sweep's own steps are its io calls (a listing and
  // four reads). Every placement of the snapshot's steps among them is run.
  const sweepCalls = 5;
  const placements: [number, number, number][] = [];
  for (let a = 0; a <= sweepCalls; a++)
    for (let b = a; b <= sweepCalls; b++) for (let c = b; c <= sweepCalls; c++) placements.push([a, b, c]);

  it(`keeps the snapshot's delta in all ${placements.length} interleavings, and removes a true orphan`, () => {
    for (const [k, at] of placements.entries()) {
      // Given a disk with an orphan (delta 2), and another tool's snapshot that will make delta 1
      const { dir, ddxml } = disk(`interleaved-${k}`, [delta(2)]);
      const steps = [
        () =>
          writeFileSync(
            `${ddxml}.tmp`,
            descriptor([
              [OTHER, 'root.hds'],
              [TOPDELTA, delta(1)],
            ]),
          ),
        () => writeFileSync(join(dir, delta(1)), 'the new top delta'),
        () => renameSync(`${ddxml}.tmp`, ddxml),
      ];
      let calls = 0;
      const due = () => {
        for (const [i, step] of steps.entries()) if (at[i] === calls) step();
      };
      const io: SweepIo = {
        list: (f) => (due(), calls++, fsIo.list(f)),
        read: (p) => (due(), calls++, fsIo.read(p)),
      };

      // When the sweep runs with the snapshot's steps at these places
      const actions: string[] = [];
      sweepOrphanDeltas(ddxml, actions, { io });
      due();

      // Then the snapshot's delta is there, and the orphan is gone
      assert.equal(calls, sweepCalls, 'the sweep made the calls counted');
      assert.ok(existsSync(join(dir, delta(1))), `interleaving ${at.join(',')}: ${actions.join('; ')}`);
      assert.deepEqual(actions, [`removed orphan delta ${delta(2)}`], `interleaving ${at.join(',')}`);
    }
  });
});

describe('the orphan-delta sweep', () => {
  it('removes no delta while a .tmp is not whole XML, and says why', () => {
    // Given a descriptor being written in place (its .tmp cut short) and a delta no stored descriptor names
    const { dir, ddxml } = disk('half-stored', [delta(6)]);
    writeFileSync(`${ddxml}.tmp`, descriptor([[TOPDELTA, delta(6)]]).slice(0, 120));

    // When the sweep runs
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, actions);

    // Then the delta stays
    assert.equal(actions.length, 1);
    assert.match(actions[0]!, /^removed no delta: DiskDescriptor\.xml\.tmp cannot be read whole \(/);
    assert.ok(existsSync(join(dir, delta(6))));
  });

  it('keeps what the backup copy and its .tmp name', () => {
    // Given the copy naming delta 4 and its .tmp naming delta 5, and an orphan (delta 10)
    const { dir, ddxml } = disk('copy', [delta(4), delta(5), delta(10)]);
    writeFileSync(
      `${ddxml}.copy`,
      descriptor([
        [BASE, 'root.hds'],
        [TOPDELTA, delta(4)],
      ]),
    );
    writeFileSync(
      `${ddxml}.copy.tmp`,
      descriptor([
        [BASE, 'root.hds'],
        [OTHER, delta(4)],
        [TOPDELTA, delta(5)],
      ]),
    );

    // When the sweep runs
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, actions);

    // Then only the orphan goes
    assert.deepEqual(actions, [`removed orphan delta ${delta(10)}`]);
    assert.ok(existsSync(join(dir, delta(4))) && existsSync(join(dir, delta(5))));
  });

  it('keeps a delta no descriptor names that a device of this host opens (an online snapshot cut short)', () => {
    // Given a delta named by no file, written by a device (someone's online snapshot cut short after its switch)
    const { dir, ddxml } = disk('opened', [delta(11), delta(12)]);
    const opened = () => new Map([[join(dir, delta(11)), '/dev/ploop5']]);

    // When the sweep runs
    const actions: string[] = [];
    sweepOrphanDeltas(ddxml, actions, { opened });

    // Then that delta stays, and the one nothing opens goes
    assert.deepEqual(actions, [
      `kept ${delta(11)}: no descriptor names it, and /dev/ploop5 opens it`,
      `removed orphan delta ${delta(12)}`,
    ]);
    assert.ok(existsSync(join(dir, delta(11))));
  });

  it('looks beside the base image, where ploop makes the deltas, when the descriptor names it in another folder', () => {
    // Given a descriptor naming its base ../elsewhere-images/root.hds, with a named delta and an orphan beside it
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
    sweepOrphanDeltas(ddxml, actions);

    // Then the orphan there goes, the named delta stays
    assert.deepEqual(actions, [`removed orphan delta ${delta(8)}`]);
    assert.deepEqual(readdirSync(images).sort(), ['root.hds', delta(7)]);
  });

  it("names deltas as ploop 7 (the base's name) and ploop 9 (a trailing .{…} cut off) do", () => {
    const p = deltaPattern('/vz/root.hdd/root.hds.{0f4c9a7e-1b2d-4c3e-8f5a-000000000001}');
    assert.ok(p.test(delta(9)));
    assert.ok(
      p.test(`root.hds.{0f4c9a7e-1b2d-4c3e-8f5a-000000000001}.{0f4c9a7e-1b2d-4c3e-8f5a-000000000002}`),
    );
    assert.ok(deltaPattern('/vz/root.hdd/root.hds').test(delta(9)));
    assert.ok(!deltaPattern('/vz/root.hdd/root.hds').test('root.hds.tmp'));
  });
});

describe("a snapshot's store cut short before its rename (cutShortSnapshot)", () => {
  const before = view([
    [BASE, 'root.hds'],
    [TOPDELTA, delta(1)],
  ]);

  it('is the store of that snapshot: the top relabeled with its GUID, one new top, child of it', () => {
    const tmp = view([
      [BASE, 'root.hds'],
      [G1, delta(1)],
      [TOPDELTA, delta(2)],
    ]);
    assert.equal(cutShortSnapshot(before, tmp, G1), '/vz/d/' + delta(2));
  });

  it('is not once the descriptor names the GUID: a later store (a resize, another snapshot) of the same chain', () => {
    const after = view([
      [BASE, 'root.hds'],
      [G1, delta(1)],
      [TOPDELTA, delta(2)],
    ]);
    assert.equal(cutShortSnapshot(after, after, G1), undefined);
    const later = view([
      [BASE, 'root.hds'],
      [G1, delta(1)],
      [OTHER, delta(2)],
      [TOPDELTA, delta(3)],
    ]);
    assert.equal(cutShortSnapshot(after, later, G1), undefined);
  });

  it("is not another snapshot's store, nor one that changed the chain below", () => {
    const other = view([
      [BASE, 'root.hds'],
      [OTHER, delta(1)],
      [TOPDELTA, delta(2)],
    ]);
    assert.equal(cutShortSnapshot(before, other, G1), undefined);
    const moved = view([
      [BASE, 'root-moved.hds'],
      [G1, delta(1)],
      [TOPDELTA, delta(2)],
    ]);
    assert.equal(cutShortSnapshot(before, moved, G1), undefined);
  });
});

describe('a .tmp removed only if it is still the file read', () => {
  it('leaves one stored again since it was read', () => {
    const { ddxml } = disk('replaced', []);
    writeFileSync(`${ddxml}.tmp`, descriptor([[TOPDELTA, 'root.hds']]));
    const read = readStoreTmp(`${ddxml}.tmp`);
    assert.equal(read.kind, 'whole');
    if (read.kind !== 'whole') return;
    // Another store writes its own .tmp (a new file, renamed into place)
    writeFileSync(`${ddxml}.tmp.tmp`, descriptor([[TOPDELTA, 'root.hds']]));
    renameSync(`${ddxml}.tmp.tmp`, `${ddxml}.tmp`);
    assert.equal(removeIfSame(`${ddxml}.tmp`, read.id), false);
    assert.ok(existsSync(`${ddxml}.tmp`));
    const again = readStoreTmp(`${ddxml}.tmp`);
    assert.ok(again.kind === 'whole' && removeIfSame(`${ddxml}.tmp`, again.id));
    assert.ok(!existsSync(`${ddxml}.tmp`));
  });
});

describe('what is done with a snapshot cut short (settleCutShort)', () => {
  const made = '/vz/d/root.hds.{0f4c9a7e-1b2d-4c3e-8f5a-000000000002}';
  const base = { online: true, made, madeExists: true };
  it('finishes an online one whose device writes its delta', () => {
    assert.equal(settleCutShort({ ...base, deviceTop: { file: made } }), 'finish');
  });
  it('undoes one whose device was not switched, that no device opens, that was offline, or whose delta was not made', () => {
    assert.equal(settleCutShort({ ...base, deviceTop: { file: '/vz/d/root.hds' } }), 'undo');
    assert.equal(settleCutShort({ ...base, deviceTop: 'no device' }), 'undo');
    assert.equal(settleCutShort({ ...base, online: false, deviceTop: 'not shown' }), 'undo');
    assert.equal(settleCutShort({ ...base, madeExists: false, deviceTop: 'not shown' }), 'undo');
  });
  it("changes nothing of an online one whose device's deltas the host does not show", () => {
    assert.equal(settleCutShort({ ...base, deviceTop: 'not shown' }), 'unknown');
  });
});

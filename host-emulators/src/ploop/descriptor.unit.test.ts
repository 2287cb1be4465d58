import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  InvalidDescriptor,
  NONE_UUID,
  TOPDELTA,
  readDescriptor,
  storeDescriptor,
  storeDescriptorAround,
  type DiskDescriptor,
} from './descriptor.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-descriptor-'));
const cluster = join(dir, 'cluster');
const node = join(dir, 'node-a');
const dd = join(dir, 'disk', 'DiskDescriptor.xml');
const records = join(cluster, 'parsed-descriptors');
const disk: DiskDescriptor = {
  rootName: 'Parallels_disk_image',
  diskSize: 131072,
  cylinders: 256,
  heads: 16,
  blocksize: 2048,
  images: [{ guid: TOPDELTA, type: 'Compressed', file: 'root.hds' }],
  top: TOPDELTA,
  shots: [{ guid: TOPDELTA, parent: NONE_UUID, temporary: false }],
};

describe('descriptor reads: what an emulator of the cluster parsed of exactly this text', () => {
  const root = process.env['HAUL_EMU_ROOT'];
  before(() => {
    mkdirSync(join(node, 'etc'), { recursive: true });
    mkdirSync(join(dir, 'disk'));
    writeFileSync(
      join(node, 'etc', 'haul-emu.json'),
      JSON.stringify({ node: 'node-a', clusterDir: cluster }),
    );
    process.env['HAUL_EMU_ROOT'] = node;
  });
  after(() => {
    if (root === undefined) delete process.env['HAUL_EMU_ROOT'];
    else process.env['HAUL_EMU_ROOT'] = root;
    rmSync(dir, { recursive: true, force: true });
  });

  it('given a stored descriptor, when it is read, then the record of its text stands for a parse', () => {
    // Given a descriptor stored by an emulator of the cluster
    storeDescriptor(dd, disk);
    assert.deepEqual(readDescriptor(dd), disk);
    // When its record says something else of the very same text (a record is believed, never checked again)
    const [name, ...others] = readdirSync(records);
    assert.equal(others.length, 0);
    const recordFile = join(records, name!);
    const r = JSON.parse(readFileSync(recordFile, 'utf8')) as { xml: string; dd: DiskDescriptor };
    assert.equal(r.xml, readFileSync(dd, 'utf8'));
    writeFileSync(recordFile, JSON.stringify({ ...r, dd: { ...r.dd, diskSize: 1 } }));
    // Then a read returns the record's
    assert.equal(readDescriptor(dd).diskSize, 1);
  });

  it('given a descriptor changed by anything else, when it is read, then it is parsed afresh, errors and all', () => {
    // Given the text changed behind the emulators' back (a test, a real ploop)
    storeDescriptor(dd, disk);
    const xml = readFileSync(dd, 'utf8');
    writeFileSync(dd, xml.replace('<Disk_size>131072</Disk_size>', '<Disk_size>262144</Disk_size>'));
    // Then the read parses the new text
    assert.equal(readDescriptor(dd).diskSize, 262144);
    // And a text that is no descriptor is refused, though the old text had a record
    writeFileSync(dd, xml.replace('<Snapshots>', '<Nothing>'));
    assert.throws(() => readDescriptor(dd), InvalidDescriptor);
  });

  it('given numbers ploop reads with strtoul, when read twice, then both reads agree with ploop', () => {
    storeDescriptor(dd, disk);
    const xml = readFileSync(dd, 'utf8');
    const withText = (tag: string, value: string) =>
      xml.replace(new RegExp(`<${tag}>[^<]*</${tag}>`), `<${tag}>${value}</${tag}>`);
    // A size parse_ul refuses is left at 0 (lib/xml.c 233–238 at v7.0.280), by the parse and by its record alike
    writeFileSync(dd, withText('Disk_size', '12x'));
    assert.equal(readDescriptor(dd).diskSize, 0);
    assert.equal(readDescriptor(dd).diskSize, 0);
    // Base 0: hexadecimal and octal
    writeFileSync(dd, withText('Disk_size', '0x20000'));
    assert.equal(readDescriptor(dd).diskSize, 131072);
    writeFileSync(dd, withText('Disk_size', '0400000'));
    assert.equal(readDescriptor(dd).diskSize, 131072);
    // A block size it refuses makes the descriptor invalid (lib/xml.c 317–324 at v7.0.280)
    writeFileSync(dd, withText('Blocksize', '2k'));
    assert.throws(() => readDescriptor(dd), /Invalid Blocksize 2k/);
  });

  it('given a descriptor whose path is long, when it is stored and read, then its record is kept all the same', () => {
    // Given a path of over 255 characters, spaces in it (its record's name does not grow with it)
    const deep = join(
      dir,
      ...Array.from({ length: 12 }, (_, i) => `folder number ${i} of many`),
      'DiskDescriptor.xml',
    );
    assert.ok(deep.length > 255);
    mkdirSync(join(deep, '..'), { recursive: true });
    rmSync(records, { recursive: true, force: true });
    storeDescriptor(deep, disk);
    assert.deepEqual(readDescriptor(deep), disk);
    assert.equal(readdirSync(records).length, 1);
  });

  it('given no emulated node (no HAUL_EMU_ROOT), when a descriptor is stored and read, then nothing is recorded', () => {
    rmSync(records, { recursive: true, force: true });
    delete process.env['HAUL_EMU_ROOT'];
    try {
      storeDescriptor(dd, disk);
      assert.deepEqual(readDescriptor(dd), disk);
      assert.equal(existsSync(records), false);
    } finally {
      process.env['HAUL_EMU_ROOT'] = node;
    }
  });
});

describe("a new delta's descriptor, stored around the delta's making as ploop stores it", () => {
  const folder = mkdtempSync(join(tmpdir(), 'haul-descriptor-around-'));
  after(() => rmSync(folder, { recursive: true, force: true }));
  const at = join(folder, 'DiskDescriptor.xml');
  const delta = 'root.hds.{0f4c9a7e-1b2d-4c3e-8f5a-000000000001}';
  const withDelta: DiskDescriptor = {
    ...disk,
    images: [
      { guid: '{0f4c9a7e-1b2d-4c3e-8f5a-0000000000aa}', type: 'Compressed', file: 'root.hds' },
      { guid: TOPDELTA, type: 'Compressed', file: delta },
    ],
    shots: [
      { guid: '{0f4c9a7e-1b2d-4c3e-8f5a-0000000000aa}', parent: NONE_UUID, temporary: false },
      { guid: TOPDELTA, parent: '{0f4c9a7e-1b2d-4c3e-8f5a-0000000000aa}', temporary: false },
    ],
  };

  it('given a snapshot, while its delta is made, then DiskDescriptor.xml.tmp names it; after, the descriptor does', () => {
    storeDescriptor(at, disk);
    let during: string | undefined;
    storeDescriptorAround(at, withDelta, () => {
      writeFileSync(join(folder, delta), '');
      during = readFileSync(`${at}.tmp`, 'utf8');
      assert.ok(!readFileSync(at, 'utf8').includes(delta), 'the descriptor is not stored yet');
    });
    assert.ok(during?.includes(`<File>${delta}</File>`), 'the .tmp named the delta while it was made');
    assert.deepEqual(readDescriptor(at), withDelta);
    assert.equal(existsSync(`${at}.tmp`), false);
  });

  it('given a making that fails, then the descriptor is as before and no .tmp is left', () => {
    storeDescriptor(at, disk);
    assert.throws(
      () =>
        storeDescriptorAround(at, withDelta, () => {
          throw new Error('device busy');
        }),
      /device busy/,
    );
    assert.deepEqual(readDescriptor(at), disk);
    assert.deepEqual(
      readdirSync(folder).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });
});

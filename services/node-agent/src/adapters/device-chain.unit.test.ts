import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { deviceDeltas, openedDeltas } from './device-chain.ts';

const hostRoot = mkdtempSync(join(tmpdir(), 'haul-device-chain-'));
after(() => rmSync(hostRoot, { recursive: true, force: true }));

describe("a ploop device's deltas, from ploop 7's sysfs", () => {
  it('lists /sys/block/<dev>/pdelta/<level>/image, base first', () => {
    for (const [level, image] of ['/vz/d/root.hds', '/vz/d/root.hds.{1}', '/vz/d/root.hds.{2}'].entries()) {
      mkdirSync(join(hostRoot, 'sys', 'block', 'ploop3', 'pdelta', String(level)), { recursive: true });
      writeFileSync(join(hostRoot, 'sys', 'block', 'ploop3', 'pdelta', String(level), 'image'), `${image}\n`);
    }
    assert.deepEqual(deviceDeltas(hostRoot, '/dev/ploop3'), [
      '/vz/d/root.hds',
      '/vz/d/root.hds.{1}',
      '/vz/d/root.hds.{2}',
    ]);
  });

  it('is not shown for a device without pdelta (ploop 9: a device-mapper target)', () => {
    mkdirSync(join(hostRoot, 'sys', 'block', 'ploop4'), { recursive: true });
    assert.equal(deviceDeltas(hostRoot, '/dev/ploop4'), undefined);
  });

  it('maps every delta a ploop device of the host opens to that device; none where sysfs shows none', () => {
    const m = openedDeltas(hostRoot);
    assert.equal(m.get('/vz/d/root.hds.{2}'), '/dev/ploop3');
    assert.equal(m.get('/vz/d/root.hds'), '/dev/ploop3');
    assert.equal(m.size, 3);
    assert.equal(openedDeltas(join(hostRoot, 'nowhere')).size, 0);
  });
});

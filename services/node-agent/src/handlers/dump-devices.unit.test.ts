import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { HandlerContext } from '../context.ts';
import { dumpDevicesOf } from './dumps.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-dump-devices-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A host with CT 101's config (no secondary disk) and a context whose vzctl only counts its devmap calls. */
function host(name: string, bootId = 'boot-1') {
  const hostRoot = join(root, name);
  mkdirSync(join(hostRoot, 'etc', 'vz', 'conf'), { recursive: true });
  writeFileSync(join(hostRoot, 'etc', 'vz', 'conf', '101.conf'), 'VE_ROOT="/vz/root/101"\n');
  const calls = { devmap: 0 };
  const ctx = {
    cfg: { hostRoot, bootId, node: 'node-a' },
    tools: {
      vzctlCreateDevmap: () => {
        calls.devmap++;
        return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
      },
    },
  } as unknown as HandlerContext;
  return { ctx, calls, workDir: join(hostRoot, 'work') };
}

describe("the final dump's devices, made before the first dump", () => {
  it('given devices made for this CT init in this boot, when asked again, then they are read from the work dir', async () => {
    const h = host('same');
    assert.deepEqual(await dumpDevicesOf(h.ctx, '101', h.workDir, 4242), []);
    assert.deepEqual(await dumpDevicesOf(h.ctx, '101', h.workDir, 4242), []);
    assert.equal(h.calls.devmap, 1);
    const kept = JSON.parse(readFileSync(join(h.workDir, 'dump-devices.json'), 'utf8')) as unknown;
    assert.deepEqual(kept, { bootId: 'boot-1', initPid: 4242, externals: [] });
  });

  it('given a CT init restarted since (another pid), or another boot, then they are made again', async () => {
    const h = host('restarted');
    await dumpDevicesOf(h.ctx, '101', h.workDir, 4242);
    await dumpDevicesOf(h.ctx, '101', h.workDir, 5353);
    assert.equal(h.calls.devmap, 2);
    const rebooted = host('restarted', 'boot-2');
    await dumpDevicesOf(rebooted.ctx, '101', h.workDir, 5353);
    assert.equal(rebooted.calls.devmap, 1);
  });

  it('given a torn or foreign file, then they are made again and the file is whole after', async () => {
    const h = host('torn');
    mkdirSync(h.workDir, { recursive: true });
    for (const body of [
      '{"bootId":"boot-1","initPid":4242,"exter',
      '{"bootId":"boot-1","initPid":4242,"externals":["/dev/sda"]}',
    ]) {
      writeFileSync(join(h.workDir, 'dump-devices.json'), body);
      await dumpDevicesOf(h.ctx, '101', h.workDir, 4242);
    }
    assert.equal(h.calls.devmap, 2);
    assert.deepEqual(await dumpDevicesOf(h.ctx, '101', h.workDir, 4242), []);
    assert.equal(h.calls.devmap, 2);
  });
});

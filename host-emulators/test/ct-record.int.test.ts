import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';
import { processStart } from '../src/lib/process.ts';

/**
 * A CT's record names its init by pid and start time. A record a SIGKILLed CT left (its own exit never cleared it)
 * names a pid the kernel may give to another process: only the start time tells the two apart.
 */
describe("vzctl: a CT's record whose pid is used again", () => {
  let c: EmulatedCluster;
  const other = spawn('sleep', ['600'], { stdio: 'ignore' });
  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a');
    await c.ok('node-a', 'haul-emu', ['create-ct', '--ctid', '101']);
  });
  after(() => {
    other.kill('SIGKILL');
    c?.destroy();
  });
  const record = (rec: object) =>
    writeFileSync(
      join(c.nodeRoot('node-a'), 'var', 'lib', 'haul-emu', 'cts', '101.json'),
      JSON.stringify(rec),
    );
  const status = async () => (await c.ok('node-a', 'vzctl', ['status', '101'])).trim();

  it('given a record naming a live process by pid but another start time, when vzctl status runs, then the CT is down', async () => {
    // Given CT 101's record naming a pid that another process (a sleep) now has, with an earlier start time
    const pid = other.pid!;
    const start = processStart(pid)!;
    record({ pid, start: String(Number(start) - 1) });

    // When vzctl is asked, and asked again once the record names that process itself
    const reused = await status();
    record({ pid, start });
    const same = await status();

    // Then the CT is down while the pid names another process, and runs for the process it recorded
    assert.match(reused, /down$/);
    assert.match(same, /running$/);
  });
});

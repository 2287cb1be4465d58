import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { repoRoot } from '@haul/test';

it('compose.yaml passes `docker-compose config` and holds the whole topology', () => {
  const check = spawnSync('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  assert.equal(
    check.error,
    undefined,
    'docker-compose is not installed: run `npm run bootstrap` (apt-get install docker-compose)',
  );
  assert.equal(check.status, 0, check.stderr);
  const services = spawnSync(
    'docker-compose',
    ['-f', 'compose.yaml', '--profile', 'tools', 'config', '--services'],
    { cwd: repoRoot, encoding: 'utf8' },
  );
  assert.deepEqual(services.stdout.trim().split('\n').sort(), [
    'agent-node-a',
    'agent-node-b',
    'cli',
    'coordinator',
    'nats',
    'setup',
    'streamer-node-a',
    'streamer-node-b',
  ]);
});

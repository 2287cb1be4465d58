import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initClusterHelp } from './init-cluster.ts';
import { main } from './main.ts';
import { createOutput } from './output.ts';

/** Nothing listens there: a command that got as far as connecting exits 69 (natsUnreachable), not 2. */
const nowhere = ['--nats', 'nats://127.0.0.1:1'];

/** Run `haul ARGV` in this process: its exit code, stdout and stderr. */
async function haul(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    out: createOutput({ write: (s: string) => (out += s) }, { COLUMNS: '110' }),
    err: (s) => (err += `${s}\n`),
    env: {},
  });
  return { code, out, err };
}

const migrate = ['migrate', '--ct', '101', '--from', 'node-a', '--to', 'node-b', ...nowhere];

describe('a value the request would be refused for is a usage error, before anything is sent', () => {
  it('a number out of its range names the flag, its rule and the value given', async () => {
    const r = await haul(...migrate, '--max-iterations', '0');
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /haul: --max-iterations: must be >= 1 \(got 0\)/);
    assert.equal((await haul(...migrate, '--frozen-lease-ms', '5')).code, 2);
    assert.equal((await haul(...migrate, '--max-downtime-ms', '1000000')).code, 2);
  });
  it('a relative shared disk and a CT id vzctl would misread name their flags', async () => {
    const disk = await haul(...migrate, '--shared-disk', 'rel/path');
    assert.equal(disk.code, 2, disk.err);
    assert.match(disk.err, /--shared-disk: .*\(got "rel\/path"\)/);
    const ct = await haul('migrate', '--ct', '0101', '--from', 'node-a', '--to', 'node-b', ...nowhere);
    assert.equal(ct.code, 2, ct.err);
    assert.match(ct.err, /--ct: /);
  });
  it('haul evacuate checks its flags before it reads which CTs run', async () => {
    const r = await haul('evacuate', 'node-a', '--to', 'node-b', '--max-downtime-ms', '5', ...nowhere);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /--max-downtime-ms: must be >= 100 \(got 5\)/);
  });
  it('haul evacuate checks every target node, and names its NODE as NODE', async () => {
    const target = await haul('evacuate', 'node-a', '--to', 'node-b,Node C', ...nowhere);
    assert.equal(target.code, 2, target.err);
    assert.match(target.err, /--to: .*\(got "Node C"\)/);
    const node = await haul('evacuate', 'Node A', '--to', 'node-b', ...nowhere);
    assert.equal(node.code, 2, node.err);
    assert.match(node.err, /haul: NODE: .*\(got "Node A"\)/);
  });
  it('values in range get as far as NATS', async () => {
    assert.equal((await haul(...migrate, '--max-iterations', '9', '--shared-disk', '/s/ct101')).code, 69);
  });
});

describe('other command lines', () => {
  it('events --since takes an ISO 8601 time, not a bare number', async () => {
    const r = await haul('events', '--since', '10', ...nowhere);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /--since: "10" is not an ISO 8601 time/);
    assert.equal((await haul('events', '--since', '2026-11-25T19:00:00Z', ...nowhere)).code, 69);
  });
  it('an empty filter is refused, not taken for none', async () => {
    const r = await haul('events', '--migration', '', ...nowhere);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /--migration needs a value \(ID\), not an empty one/);
  });
  it('a flag of a command with its value may come before the command word', async () => {
    const r = await haul('--timeout', '5s', 'wait', 'm-1', ...nowhere);
    assert.equal(r.code, 69, r.err);
    const errors: string[] = [];
    const error = console.error;
    console.error = (s: string) => void errors.push(s);
    try {
      // init-cluster's own: a missing --out is its usage error, not "unknown command"
      assert.equal((await haul('--nodes', 'a', 'init-cluster')).code, 2);
    } finally {
      console.error = error;
    }
    assert.match(errors.join('\n'), /missing --out DIR/);
  });
  it('haul help init-cluster and haul init-cluster --help print its help', async () => {
    const logged: string[] = [];
    const log = console.log;
    console.log = (s: string) => void logged.push(s);
    try {
      assert.equal((await haul('help', 'init-cluster')).code, 0);
      assert.equal((await haul('--nats', 'nats://x:1', 'init-cluster', '--help')).code, 0);
    } finally {
      console.log = log;
    }
    assert.deepEqual(logged, [initClusterHelp(110), initClusterHelp(110)]);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createValidators } from './validation.ts';

const v = createValidators();
const good = { requestId: 'req-1', ctid: '101', source: 'node-a', target: 'node-b' };

describe('migrate request schema', () => {
  it('accepts a minimal valid request', () => {
    assert.equal(v.validate('migrateRequest', good).ok, true);
  });
  it('accepts every ctid vzctl takes: 1 to INT_MAX, and a UUID', () => {
    for (const ctid of ['1', '9', '999999999', '1000000000', '2099999999', '2147483639', '2147483647'])
      assert.equal(v.validate('migrateRequest', { ...good, ctid }).ok, true, ctid);
    const uuid = '0f3c1a2b-4d5e-4f60-8a9b-0c1d2e3f4a5b';
    assert.equal(v.validate('migrateRequest', { ...good, ctid: uuid }).ok, true);
    for (const ctid of ['2147483650', '2200000000', '3000000000', '9999999999'])
      assert.equal(v.validate('migrateRequest', { ...good, ctid }).ok, false, ctid);
  });
  const cases: [string, Record<string, unknown>, string, string][] = [
    ['a missing target', { ...good, target: undefined }, 'target', 'required'],
    ['a node name with spaces', { ...good, source: 'Node A' }, 'source', 'pattern'],
    ['an unknown mode', { ...good, mode: 'teleport' }, 'mode', 'enum'],
    ['an unknown field', { ...good, colour: 'red' }, 'colour', 'additionalProperties'],
    ['a relative shared disk path', { ...good, sharedDisks: ['shared/dd.xml'] }, 'sharedDisks.0', 'pattern'],
    ['a negative downtime budget', { ...good, maxDowntimeMs: -5 }, 'maxDowntimeMs', 'minimum'],
    ['a ctid above INT_MAX, which vzctl refuses', { ...good, ctid: '2147483648' }, 'ctid', 'pattern'],
    ['a ctid with a leading zero (vzctl reads 0101 as 101)', { ...good, ctid: '0101' }, 'ctid', 'pattern'],
    ['ctid 0, the host itself', { ...good, ctid: '0' }, 'ctid', 'pattern'],
  ];
  for (const [what, input, field, rule] of cases) {
    it(`rejects ${what}, naming the field '${field}' and the rule`, () => {
      const r = v.validate('migrateRequest', JSON.parse(JSON.stringify(input)));
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.error.code, 'HAUL_INVALID_MESSAGE');
      assert.equal(r.error.field, field);
      assert.equal(r.error.rule, rule);
      assert.match(r.error.message, new RegExp(`'${field.replace('.', '\\.')}'`));
      assert.doesNotMatch(r.error.message, /\n\s+at /, 'no stack trace');
    });
  }
});

describe('command schema', () => {
  const cmd = {
    commandId: 'mig-1:preDump:0:1',
    migrationId: 'mig-000001',
    node: 'node-a',
    executor: 'agent',
    attempt: 1,
    step: 'preDump',
    timeoutMs: 1000,
    args: { ctid: '101', iteration: 0, imageDir: '/img/1', workDir: '/work' },
  };
  it('accepts a well-formed command', () => assert.equal(v.validate('command', cmd).ok, true));
  it('checks the args against the schema of the named step', () => {
    const r = v.validate('command', { ...cmd, args: { ...cmd.args, imageDir: 'relative' } });
    assert.equal(!r.ok && r.error.field, 'args.imageDir');
  });
  it('names an unknown step', () => {
    const r = v.validate('command', { ...cmd, step: 'explode' });
    assert.equal(!r.ok && r.error.field, 'step');
  });
});

describe('every number has a sane range', () => {
  const huge = 2147483000; // a lease of 24.8 days
  const tiny = 1e-300; // a stream that never ends
  const refused = (name: 'migrateRequest' | 'command', input: unknown, field: string, rule: string) => {
    const r = v.validate(name, input);
    assert.equal(r.ok, false, `${field} accepted`);
    if (r.ok) return;
    assert.deepEqual([r.error.field, r.error.rule], [field, rule]);
    assert.match(r.error.message, new RegExp(`'${field.replace('.', '\\.')}'`));
  };
  const request: [string, number, string][] = [
    ['bandwidthLimitMBps', tiny, 'minimum'],
    ['bandwidthLimitMBps', huge, 'maximum'],
    ['frozenLeaseMs', huge, 'maximum'],
    ['frozenLeaseMs', 100, 'minimum'],
    ['maxDowntimeMs', huge, 'maximum'],
    ['maxDowntimeMs', 1, 'minimum'],
    ['maxIterations', huge, 'maximum'],
  ];
  for (const [field, value, rule] of request)
    it(`a migrate request with ${field} ${value} is refused, naming the field`, () =>
      refused('migrateRequest', { ...good, [field]: value }, field, rule));
  it('a migrate request at the documented bounds is accepted', () => {
    for (const [bandwidthLimitMBps, frozenLeaseMs, maxDowntimeMs] of [
      [1, 1000, 100],
      [100000, 900000, 900000],
    ])
      assert.equal(
        v.validate('migrateRequest', { ...good, bandwidthLimitMBps, frozenLeaseMs, maxDowntimeMs }).ok,
        true,
      );
  });

  const finalDump = {
    commandId: 'mig-1:finalDump:-:1',
    migrationId: 'mig-000001',
    node: 'node-a',
    executor: 'agent',
    attempt: 1,
    step: 'finalDump',
    timeoutMs: 180000,
    args: { ctid: '101', iteration: 1, imageDir: '/img/2', workDir: '/work', leaseMs: 60000 },
  };
  const stream = {
    ...finalDump,
    commandId: 'mig-1:streamImages:final:1',
    executor: 'streamer',
    step: 'streamImages',
    args: {
      toNode: 'node-b',
      sourceDir: '/img/2',
      targetDir: '/img/2',
      priority: 'final',
      bandwidthLimitMBps: 100,
    },
  };
  it('well-formed commands with bounded numbers are accepted', () => {
    assert.equal(v.validate('command', finalDump).ok, true);
    assert.equal(v.validate('command', stream).ok, true);
  });
  const commands: [string, unknown, string, string][] = [
    [
      'a lease of 24.8 days',
      { ...finalDump, args: { ...finalDump.args, leaseMs: huge } },
      'args.leaseMs',
      'maximum',
    ],
    ['a timeout of 24.8 days', { ...finalDump, timeoutMs: huge }, 'timeoutMs', 'maximum'],
    ['an absurd attempt', { ...finalDump, attempt: huge }, 'attempt', 'maximum'],
    [
      'an absurd iteration',
      { ...finalDump, args: { ...finalDump.args, iteration: huge } },
      'args.iteration',
      'maximum',
    ],
    [
      'a bandwidth of 1e-300 MB/s',
      { ...stream, args: { ...stream.args, bandwidthLimitMBps: tiny } },
      'args.bandwidthLimitMBps',
      'minimum',
    ],
  ];
  for (const [what, input, field, rule] of commands)
    it(`a command with ${what} is refused, naming '${field}'`, () => refused('command', input, field, rule));
});

describe('operator requests', () => {
  it('resolve names the stuck action as <step>:<subject>', () => {
    assert.equal(
      v.validate('resolveRequest', { migrationId: 'm-0123456789ab', action: 'mergeOrigin:1' }).ok,
      true,
    );
    const r = v.validate('resolveRequest', { migrationId: 'm-0123456789ab', action: 'rm -rf /' });
    assert.equal(!r.ok && r.error.field, 'action');
    assert.equal(
      v.validate('retryRequest', { migrationId: 'm-0123456789ab', reason: 'disk replaced' }).ok,
      true,
    );
  });
});

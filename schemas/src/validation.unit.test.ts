import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createValidators } from './validation.ts';

const v = createValidators();
const good = { requestId: 'req-1', ctid: '101', source: 'node-a', target: 'node-b' };

describe('migrate request schema', () => {
  it('accepts a minimal valid request', () => {
    assert.equal(v.validate('migrateRequest', good).ok, true);
  });
  const cases: [string, Record<string, unknown>, string, string][] = [
    ['a missing target', { ...good, target: undefined }, 'target', 'required'],
    ['a node name with spaces', { ...good, source: 'Node A' }, 'source', 'pattern'],
    ['an unknown mode', { ...good, mode: 'teleport' }, 'mode', 'enum'],
    ['an unknown field', { ...good, colour: 'red' }, 'colour', 'additionalProperties'],
    ['a relative shared disk path', { ...good, sharedDisks: ['shared/dd.xml'] }, 'sharedDisks.0', 'pattern'],
    ['a negative downtime budget', { ...good, maxDowntimeMs: -5 }, 'maxDowntimeMs', 'minimum'],
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

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closest, editDistance, parseCommandLine, parseDuration, type FlagSpecs } from './args.ts';
import { UsageError } from './errors.ts';

const flags: FlagSpecs = {
  ct: { kind: 'string', value: 'ID', help: 'the CT', required: true },
  to: { kind: 'string', value: 'NODE', help: 'target' },
  'shared-disk': { kind: 'string', value: 'PATH', help: 'disk', multiple: true },
  mode: { kind: 'string', value: 'MODE', help: 'mode', choices: ['live', 'restart'] },
  'max-iterations': { kind: 'int', value: 'N', help: 'n' },
  bandwidth: { kind: 'number', value: 'MBPS', help: 'cap' },
  timeout: { kind: 'duration', value: 'DURATION', help: 'wait' },
  follow: { kind: 'boolean', short: 'f', help: 'follow' },
  json: { kind: 'boolean', help: 'json' },
};
const parse = (argv: string[]) => parseCommandLine('migrate', argv, flags, []);
const usage = (argv: string[], message: RegExp) =>
  assert.throws(
    () => parse(argv),
    (e: unknown) => e instanceof UsageError && e.command === 'migrate' && message.test(e.message),
  );

describe('the command line parser (node:util parseArgs and our checks)', () => {
  it('reads flags in both forms, repeated flags, short booleans and numbers', () => {
    const a = parse([
      '--ct',
      '101',
      '--to=node-b',
      '--shared-disk',
      '/a',
      '--shared-disk',
      '/b',
      '-f',
      '--max-iterations',
      '3',
      '--bandwidth',
      '2.5',
      '--timeout',
      '90s',
    ]);
    assert.equal(a.str('ct'), '101');
    assert.equal(a.str('to'), 'node-b');
    assert.deepEqual(a.list('shared-disk'), ['/a', '/b']);
    assert.equal(a.bool('follow'), true);
    assert.equal(a.bool('json'), false);
    assert.equal(a.num('max-iterations'), 3);
    assert.equal(a.num('bandwidth'), 2.5);
    assert.equal(a.ms('timeout'), 90_000);
  });
  it('refuses an unknown flag and names the closest known one', () => {
    usage(['--ctid', '101'], /^unknown flag --ctid \(did you mean --ct\?\)$/);
    usage(['--ct', '1', '--jsno'], /did you mean --json\?/);
    usage(['--ct', '1', '--shared-disks', '/a'], /did you mean --shared-disk\?/);
    usage(['--ct', '1', '--zzzzzzzz'], /^unknown flag --zzzzzzzz$/);
  });
  it('refuses a missing required flag, a flag without its value, and a value given to a boolean', () => {
    usage(['--to', 'b'], /missing --ct ID/);
    usage(['--ct'], /--ct needs a value/);
    usage(['--ct', '--to', 'b'], /--ct needs a value/);
    usage(['--ct', '1', '--json=yes'], /--json takes no value/);
  });
  it('checks choices (with a suggestion), whole numbers, numbers and durations', () => {
    usage(['--ct', '1', '--mode', 'lvie'], /"lvie" is not one of live, restart \(did you mean live\?\)/);
    usage(['--ct', '1', '--max-iterations', '3.5'], /not a whole number/);
    usage(['--ct', '1', '--bandwidth', 'fast'], /not a number/);
    usage(['--ct', '1', '--timeout', '5 minutes'], /not a duration/);
    usage(['--ct', '1', '--to', 'a', '--to', 'b'], /--to given 2 times/);
  });
  it('says what is wrong with a negative number (it was given, not missing), and refuses an empty value', () => {
    usage(['--ct', '1', '--max-iterations', '-1'], /--max-iterations: "-1" is not a whole number/);
    usage(['--ct', '1', '--bandwidth', '-2.5'], /--bandwidth: "-2.5" is not a number/);
    usage(['--ct', '1', '--timeout', '-5s'], /--timeout: "-5s" is not a duration/);
    usage(['--ct', ''], /--ct needs a value \(ID\), not an empty one/);
    usage(['--ct', '1', '--to='], /--to needs a value \(NODE\), not an empty one/);
    // A string flag followed by what looks like a negative number is still refused as a flag taken for its value.
    usage(['--ct', '-1'], /--ct needs a value/);
  });
  it('checks positionals against the command', () => {
    const pos = [{ name: 'ID', help: 'the migration id', required: true }];
    assert.deepEqual(parseCommandLine('status', ['m-1'], {}, pos).positionals, ['m-1']);
    assert.throws(() => parseCommandLine('status', [], {}, pos), /missing ID \(the migration id\)/);
    assert.throws(() => parseCommandLine('status', ['m-1', 'm-2'], {}, pos), /unexpected argument "m-2"/);
    assert.throws(() => parseCommandLine('ls', ['x'], {}, []), /ls takes only flags/);
  });
});

describe('suggestions and durations', () => {
  it('edit distance counts inserts, deletes and substitutions', () => {
    assert.equal(editDistance('status', 'status'), 0);
    assert.equal(editDistance('stauts', 'status'), 2);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });
  it('the closest word is a prefix match or one within a third of its length', () => {
    const cmds = ['migrate', 'status', 'ls', 'events', 'cancel', 'retry', 'resolve', 'nodes', 'services'];
    assert.equal(closest('stauts', cmds), 'status');
    assert.equal(closest('event', cmds), 'events');
    assert.equal(closest('migrat', cmds), 'migrate');
    assert.equal(closest('frobnicate', cmds), undefined);
  });
  it('durations take ms, s, m, h or bare seconds', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1.5m'), 90_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('45'), 45_000);
    assert.equal(parseDuration('soon'), undefined);
  });
});

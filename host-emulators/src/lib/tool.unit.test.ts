import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flag, GetoptError, optArg, parseOpts, withArg, type OptTable } from './tool.ts';

// A table in the shape of ploop's mount ("rFu:") plus long options like criu's.
const table: OptTable = {
  source: 'test',
  specs: [
    flag('r'),
    flag('F'),
    withArg('u', 'uuid'),
    optArg('v', 'verbosity'),
    flag(undefined, 'track-mem'),
    flag(undefined, 'tcp-established'),
    flag(undefined, 'tcp-close'),
  ],
};
const parse = (argv: string[]) => {
  const { opts, args } = parseOpts(table, argv);
  return { opts: Object.fromEntries(opts), args };
};
const refused = (argv: string[], kind: GetoptError['kind'], message: string) =>
  assert.throws(
    () => parseOpts(table, argv),
    (e) => e instanceof GetoptError && e.kind === kind && e.message === message,
  );

describe('parseOpts: glibc getopt_long as the real tools call it', () => {
  it('permutes words and options, clusters flags, takes attached or next-word arguments', () => {
    assert.deepEqual(parse(['a.xml', '-rF', '-uG1', '-u', 'G2']), {
      opts: { '-r': [''], '-F': [''], '-u': ['G1', 'G2'] },
      args: ['a.xml'],
    });
  });
  it('reads long options by their short key, with =value, and an unambiguous prefix', () => {
    assert.deepEqual(parse(['--uuid=G', '--track', '--tcp-e']), {
      opts: { '-u': ['G'], '--track-mem': [''], '--tcp-established': [''] },
      args: [],
    });
  });
  it('an optional argument is only ever attached', () => {
    assert.deepEqual(parse(['-v2', '-v', '3']), { opts: { '-v': ['2', ''] }, args: ['3'] });
  });
  it('-- ends the options', () => {
    assert.deepEqual(parse(['--', '-r']), { opts: {}, args: ['-r'] });
  });
  it('shows each option to onOption as it meets it: an end ends the parse there, a throw fails it there', () => {
    const seen: string[] = [];
    const endAtF = (key: string, value: string) => {
      seen.push(`${key}=${value}`);
      if (key === '-u' && value === 'bad') throw new Error('bad -u');
      return key === '-F' ? 'end' : undefined;
    };
    // Given -F before an option glibc would refuse: the parse ends at -F, the rest unread
    const { opts, args, endedAt } = parseOpts(table, ['a.xml', '-u', 'G', '-rF', '--bogus'], endAtF);
    assert.deepEqual(
      [Object.fromEntries(opts), args, endedAt, seen],
      [{ '-u': ['G'], '-r': [''], '-F': [''] }, ['a.xml'], '-F', ['-u=G', '-r=', '-F=']],
    );
    // Given the refused option first, or a value onOption refuses: that error, and -F never seen
    assert.throws(() => parseOpts(table, ['--bogus', '-F'], endAtF), GetoptError);
    assert.throws(() => parseOpts(table, ['-u', 'bad', '-F'], endAtF), /bad -u/);
    assert.equal(parseOpts(table, ['-r'], endAtF).endedAt, undefined);
  });
  it('tells onOption the form each option was given in: its letter, or its long name in full', () => {
    const given: string[] = [];
    const argv = ['-ru', 'G', '--uu=H', '--verb', '--verbosity=', '-v', '-v3', '--track'];
    parseOpts(table, argv, (_k, v, form, hasValue) => void given.push(`${form}${hasValue ? `=${v}` : ''}`));
    // An optional value left out is none (getopt's optarg NULL); `--verbosity=` is an empty one.
    assert.deepEqual(given, [
      '-r',
      '-u=G',
      '--uuid=H',
      '--verbosity',
      '--verbosity=',
      '-v',
      '-v=3',
      '--track-mem',
    ]);
  });
  it('refuses what glibc refuses, with its message', () => {
    refused(['-x'], 'unknown', "invalid option -- 'x'");
    refused(['--offline'], 'unknown', "unrecognized option '--offline'");
    refused(['-u'], 'missing', "option requires an argument -- 'u'");
    refused(['--uuid'], 'missing', "option '--uuid' requires an argument");
    refused(['--track-mem=yes'], 'unexpected', "option '--track-mem' doesn't allow an argument");
    refused(
      ['--tcp'],
      'ambiguous',
      "option '--tcp' is ambiguous; possibilities: '--tcp-established' '--tcp-close'",
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BenchArgError } from './bench-args.ts';
import { parseControlArgs } from './control-args.ts';
import { requestOf } from './control-load.ts';
import { percentile } from './control-proc.ts';
import { parseFloorsArgs } from './floors-args.ts';
import { parseSideBySideArgs } from './side-by-side-args.ts';
import { median } from './results.ts';
import { parseStartupArgs } from './startup-args.ts';

describe('the control bench', () => {
  it('takes --migrations, --nodes and --delay-ms, and defaults the rest', () => {
    const o = parseControlArgs(['--migrations', '100', '--nodes=4', '--delay-ms', '0']);
    assert.deepEqual(
      { migrations: o?.migrations, nodes: o?.nodes, delayMs: o?.delayMs, replay: o?.replay },
      { migrations: 100, nodes: 4, delayMs: 0, replay: 10_000 },
    );
    assert.equal(parseControlArgs(['--help']), undefined);
  });

  it('refuses an unknown flag or a bad number, naming the flag', () => {
    assert.throws(
      () => parseControlArgs(['--migration', '5']),
      (e: unknown) => (e as BenchArgError).flag === '--migration',
    );
    assert.throws(
      () => parseControlArgs(['--nodes', '1']),
      (e: unknown) => (e as BenchArgError).flag === '--nodes',
    );
    assert.throws(() => parseControlArgs(['--delay-ms']), BenchArgError);
  });

  it('gives every migration its own CT and two different nodes, spread over all nodes', () => {
    const nodes = ['a', 'b', 'c', 'd'];
    const reqs = Array.from({ length: 40 }, (_, i) => requestOf(i, nodes));
    assert.equal(new Set(reqs.map((r) => r.ctid)).size, 40);
    assert.ok(reqs.every((r) => r.source !== r.target));
    assert.deepEqual([...new Set(reqs.map((r) => `${r.source}>${r.target}`))].length, 12);
  });

  it('reads percentiles by nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(xs, 50), 50);
    assert.equal(percentile(xs, 99), 99);
    assert.ok(Number.isNaN(percentile([], 50)));
  });
});

describe('bench:startup arguments', () => {
  it('given no flags, then the defaults; given flags, then their values', () => {
    assert.deepEqual(parseStartupArgs([]), {
      toolRuns: 20,
      serviceRuns: 5,
      out: 'bench/results/startup.json',
    });
    assert.deepEqual(parseStartupArgs(['--tool-runs', '3', '--service-runs=2', '--out', '/tmp/s.json']), {
      toolRuns: 3,
      serviceRuns: 2,
      out: '/tmp/s.json',
    });
    assert.equal(parseStartupArgs(['--help']), undefined);
  });

  it('given a bad flag or value, then an error naming the flag', () => {
    const flagOf = flagRefusedBy(parseStartupArgs);
    assert.equal(flagOf(['--tool-runs', '0']), '--tool-runs');
    assert.equal(flagOf(['--service-runs', '2.5']), '--service-runs');
    assert.equal(flagOf(['--runs', '3']), '--runs');
    assert.equal(flagOf(['--out']), '--out');
  });
});

describe('bench:floors arguments', () => {
  it('given no flags, then the defaults; given flags, then their values (a quiet of 0 too)', () => {
    assert.deepEqual(parseFloorsArgs([]), {
      fillRounds: 6,
      idleMs: 3000,
      appends: 300,
      out: 'bench/results/floors.json',
    });
    assert.deepEqual(
      parseFloorsArgs(['--fill-rounds', '2', '--idle-ms=0', '--appends', '50', '--out', '/tmp/f.json']),
      {
        fillRounds: 2,
        idleMs: 0,
        appends: 50,
        out: '/tmp/f.json',
      },
    );
    assert.equal(parseFloorsArgs(['-h']), undefined);
  });

  it('given a bad flag or value, then an error naming the flag', () => {
    const flagOf = flagRefusedBy(parseFloorsArgs);
    assert.equal(flagOf(['--fill-rounds', '0']), '--fill-rounds');
    assert.equal(flagOf(['--idle-ms', '60001']), '--idle-ms');
    assert.equal(flagOf(['--appends', 'many']), '--appends');
    assert.equal(flagOf(['--rounds', '3']), '--rounds');
    assert.equal(flagOf(['extra']), 'arguments');
    assert.equal(flagOf(['--out=']), '--out');
  });
});

/** The flag a parser refuses `argv` for ('accepted' when it takes it). */
function flagRefusedBy(parse: (argv: string[]) => unknown): (argv: string[]) => string {
  return (argv) => {
    try {
      parse(argv);
    } catch (err) {
      assert.ok(err instanceof BenchArgError);
      return err.flag;
    }
    return 'accepted';
  };
}

describe("a series' median", () => {
  it('is the middle value of an odd count, the mean of the two middle ones of an even count', () => {
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([502, 208, 537, 276, 503, 285]), 393.5);
    assert.ok(Number.isNaN(median([])));
  });
});

describe('bench:side-by-side arguments', () => {
  it('given no flags, then the defaults; given flags, then their values', () => {
    assert.deepEqual(parseSideBySideArgs([]), {
      rounds: 3,
      smallMb: 64,
      largeMb: 512,
      out: 'bench/results/side-by-side.json',
    });
    assert.deepEqual(
      parseSideBySideArgs(['--rounds=1', '--small-mb', '16', '--large-mb', '1024', '--out', '/tmp/s.json']),
      {
        rounds: 1,
        smallMb: 16,
        largeMb: 1024,
        out: '/tmp/s.json',
      },
    );
    assert.equal(parseSideBySideArgs(['--help']), undefined);
  });

  it('refuses a CT smaller than the emulator makes, or an unknown flag, naming the flag', () => {
    assert.throws(
      () => parseSideBySideArgs(['--small-mb', '8']),
      (e: unknown) => (e as BenchArgError).flag === '--small-mb',
    );
    assert.throws(
      () => parseSideBySideArgs(['--round', '2']),
      (e: unknown) => (e as BenchArgError).flag === '--round',
    );
  });
});

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { commandRefusals } from '@haul/bus';
import { errorCodes } from './errors.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const registry = join(root, 'packages', 'domain', 'src', 'errors.ts');
/** The command queue's own refusals: @haul/bus cannot import the core, so it keeps them (checked equal below). */
const queueRegistry = join(root, 'packages', 'bus', 'src', 'command-queue.ts');
const codes = Object.values(errorCodes);

/** Every TypeScript source of the programs and the benchmarks (their tests assert wire values, and may spell them). */
function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name === 'generated') continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push(p);
    }
  };
  for (const d of ['packages', 'services', 'bench']) walk(join(root, d));
  return out;
}

describe('the error codes, one registry (errorCodes)', () => {
  it('gives each code one name', () => {
    assert.equal(new Set(codes).size, codes.length);
  });

  it('is the only source that spells a registered code: everything else names it through errorCodes', () => {
    const spelled = sources()
      .filter((f) => f !== registry && f !== queueRegistry)
      .flatMap((f) => {
        const text = readFileSync(f, 'utf8');
        return codes.filter((c) => text.includes(`'${c}'`)).map((c) => `${relative(root, f)}: '${c}'`);
      });
    assert.deepEqual(spelled, []);
  });

  it("agrees with the command queue's refusal that the core reads (a command whose handler threw)", () => {
    assert.equal(commandRefusals.unhandled, errorCodes.commandUnhandled);
  });

  it('has every code in docs/api.md, for the people who handle them', () => {
    const doc = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
    assert.deepEqual(
      codes.filter((c) => !doc.includes(c)),
      [],
    );
  });
});

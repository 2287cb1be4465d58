import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commands } from './commands/index.ts';
import { exitCodes } from './exit-codes.ts';
import { commandHelp, overview, usageOf, wrap } from './help.ts';

describe('help', () => {
  it('the overview lists every command and every exit code', () => {
    const text = overview(commands, '9.9.9');
    assert.match(text, /^haul 9\.9\.9:/);
    for (const c of commands) assert.match(text, new RegExp(`^  ${c.name} +${c.summary.slice(0, 20)}`, 'm'));
    for (const [name, { code }] of Object.entries(exitCodes))
      assert.match(text, new RegExp(`^ +${code}  ${name} `, 'm'));
  });
  it('a command’s help says what it does, its flags with their values and defaults, examples and exit codes', () => {
    for (const c of commands) {
      const text = commandHelp(c);
      assert.match(text, /^Examples:$/m, c.name);
      for (const [name, f] of Object.entries(c.flags)) {
        assert.match(text, new RegExp(`--${name}${f.value ? ` ${f.value}` : ''}\\b`), `${c.name} --${name}`);
        if (f.default)
          assert.ok(
            text.replace(/\s+/g, ' ').includes(`default ${f.default}`),
            `${c.name} --${name} default`,
          );
      }
      for (const e of c.exits)
        assert.match(text, new RegExp(` ${exitCodes[e].code}  ${e} `), `${c.name} ${e}`);
      assert.match(text, /--nats URL/);
      assert.ok(
        text.split('\n').every((l) => l.length <= 110),
        `${c.name}: a line over 110 columns`,
      );
    }
  });
  it('the usage line shows the required flags and arguments', () => {
    const migrate = commands.find((c) => c.name === 'migrate')!;
    assert.equal(usageOf(migrate), 'haul migrate --ct ID --from NODE --to NODE [flags]');
    assert.equal(usageOf(commands.find((c) => c.name === 'status')!), 'haul status ID [flags]');
  });
  it('wraps words into lines', () => {
    assert.deepEqual(wrap('aa bb cc dd', 5), ['aa bb', 'cc dd']);
  });
});

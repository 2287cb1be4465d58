import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commands } from './commands/index.ts';
import { exitCodes } from './exit-codes.ts';
import { commandHelp, exampleLines, helpWidth, overview, shellWords, usageOf, wrap } from './help.ts';
import { main } from './main.ts';
import { createOutput } from './output.ts';

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

  it('is laid out at the terminal’s width, from 60 to 110 columns; a pipe gets 110', () => {
    assert.equal(helpWidth(80), 80);
    assert.equal(helpWidth(Infinity), 110);
    assert.equal(helpWidth(200), 110);
    assert.equal(helpWidth(20), 60);
  });
  for (const width of [80, 60])
    it(`at ${width} columns no line of the overview or of any command’s help is wider`, () => {
      for (const [name, text] of [
        ['overview', overview(commands, '9.9.9', width)],
        ...commands.map((c) => [c.name, commandHelp(c, width)]),
      ] as const) {
        const wide = text.split('\n').filter((l) => l.length > width);
        assert.deepEqual(wide, [], `${name} at ${width}`);
      }
    });
  it('haul CMD --help follows COLUMNS', async () => {
    let text = '';
    const out = createOutput({ write: (s: string) => (text += s) }, { COLUMNS: '80' });
    const code = await main(['migrate', '--help'], { out, err: () => {}, env: {} });
    assert.equal(code, 0);
    assert.equal(
      text,
      `${commandHelp(
        commands.find((c) => c.name === 'migrate')!,
        80,
      )}\n`,
    );
    assert.ok(text.split('\n').some((l) => l.length > 70));
  });
  it('an example too wide is still one command: broken between words outside quotes, a comment after it', () => {
    const e =
      'haul evacuate node-a --to node-b --json | jq -c "select(.type == \\"EvacuationSummary\\")"   # done';
    assert.deepEqual(shellWords(e).slice(-4), [
      '-c',
      '"select(.type == \\"EvacuationSummary\\")"',
      '#',
      'done',
    ]);
    const lines = exampleLines(e, 60);
    assert.ok(
      lines.every((l) => l.length <= 60),
      lines.join('\n'),
    );
    assert.equal(lines.at(-1), '    # done');
    const command = lines
      .slice(0, -1)
      .map((l) => l.trim().replace(/ \\$/, ''))
      .join(' ');
    assert.equal(command, e.replace(/ +# done$/, ''));
    assert.ok(
      lines.slice(0, -2).every((l) => l.endsWith(' \\')),
      'a continuation on every line but the last',
    );
    assert.deepEqual(exampleLines('haul ls', 60), ['  haul ls']);
  });
});

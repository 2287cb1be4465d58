import type { FlagSpec, FlagSpecs } from './args.ts';
import { commonExits, commonFlags, type Command } from './command.ts';
import { exitCodes, type ExitName } from './exit-codes.ts';

/** Help is laid out at the terminal's width, within these bounds (a pipe or a file: the widest). */
const widest = 110;
const narrowest = 60;

/** The width to lay help out at on a terminal `columns` wide (Infinity when it is no terminal: see output.ts). */
export const helpWidth = (columns: number): number => Math.max(narrowest, Math.min(widest, columns));

/** `haul --help`: every command in one line, the common flags, every exit code; lines of at most `width`. */
export function overview(commands: readonly Command[], version: string, width = widest): string {
  const entries: [string, string][] = [
    ...commands.map((c): [string, string] => [c.name, c.summary]),
    [
      'init-cluster',
      'identities, permissions, CA and certificates of a cluster (no NATS; init-cluster --help)',
    ],
  ];
  const col = Math.max(...entries.map(([name]) => name.length)) + 4;
  return [
    ...paragraph(`haul ${version}: operate live migrations of OpenVZ/Virtuozzo containers over NATS.`, width),
    '',
    ...usageForms(
      ['haul COMMAND [flags]', 'haul COMMAND --help | haul help COMMAND', 'haul --version'],
      width,
    ),
    '',
    'Commands:',
    ...entries.flatMap(([name, summary]) => entry(name, summary, col, width)),
    '',
    'Flags of every command but init-cluster:',
    ...flagLines(commonFlags, width),
    '',
    'Exit codes (docs/cli.md):',
    ...exitLines(Object.keys(exitCodes) as ExitName[], width),
  ].join('\n');
}

/** `haul CMD --help`: what it does, its usage, its flags with their defaults, examples and its exit codes. */
export function commandHelp(c: Command, width = widest): string {
  return [
    ...paragraph(`haul ${c.name}: ${c.summary}`, width),
    '',
    ...paragraph(c.description, width),
    '',
    ...paragraph(`Usage: ${usageOf(c)}`, width),
    ...(c.positionals.length
      ? ['', 'Arguments:', ...c.positionals.flatMap((p) => entry(p.name, p.help, 26, width))]
      : []),
    '',
    'Flags:',
    ...flagLines({ ...c.flags, ...commonFlags }, width),
    '',
    'Examples:',
    ...c.examples.flatMap((e) => exampleLines(e, width)),
    '',
    'Exit codes:',
    ...exitLines([...new Set([...c.exits, ...commonExits])], width),
  ].join('\n');
}

/** haul migrate --ct ID --from NODE --to NODE [flags] */
export function usageOf(c: Pick<Command, 'name' | 'flags' | 'positionals'>): string {
  const required = Object.entries(c.flags)
    .filter(([, f]) => f.required)
    .map(([n, f]) => `--${n} ${f.value ?? 'VALUE'}`);
  const pos = c.positionals.map((p) => (p.required ? p.name : `[${p.name}]`));
  return ['haul', c.name, ...pos, ...required, '[flags]'].join(' ');
}

/** Prose in lines of at most `width`: its line breaks are only where it was wrapped when it was written. */
export function paragraph(text: string, width: number): string[] {
  return wrap(text.replace(/\s+/g, ' ').trim(), width);
}

/** "Usage: a    b    c" on one line when it fits, else one form a line. */
function usageForms(forms: readonly string[], width: number): string[] {
  const one = `Usage: ${forms.join('        ')}`;
  if (one.length <= width) return [one];
  return forms.map((f, i) => `${i === 0 ? 'Usage:' : '      '} ${f}`);
}

/** `  HEAD  text…` with the text in a column starting at `col`, wrapped under itself; a longer head has its own line. */
function entry(head: string, text: string, col: number, width: number): string[] {
  const indent = ' '.repeat(col);
  const [first, ...more] = wrap(text, width - col);
  const firstLines =
    head.length > col - 4 ? [`  ${head}`, `${indent}${first}`] : [`  ${head.padEnd(col - 4)}  ${first}`];
  return [...firstLines, ...more.map((l) => `${indent}${l}`)];
}

/** The flags, each with its value, help and notes (required, choices, default), in lines of at most `width`. */
export function flagLines(flags: FlagSpecs, width: number): string[] {
  const heads = Object.entries(flags).map(([n, f]) => [flagHead(n, f), flagText(f)] as const);
  const col = Math.min(26, Math.max(...heads.map(([h]) => h.length))) + 4;
  return heads.flatMap(([h, t]) => entry(h, t, col, width));
}

/** Words into lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  return wrapWords(text.split(' '), width).map((ws) => ws.join(' '));
}

function wrapWords(words: readonly string[], width: number): string[][] {
  const lines: string[][] = [];
  let cur: string[] = [];
  let len = 0;
  for (const word of words) {
    if (cur.length && len + 1 + word.length > width) {
      lines.push(cur);
      cur = [];
    }
    len = cur.length ? len + 1 + word.length : word.length;
    cur.push(word);
  }
  return [...lines, cur];
}

/**
 * An example command line, indented 2, in lines of at most `width` that a shell still reads as one command: broken
 * between words outside quotes, each line but the last ending in ` \`; a `# comment` that does not fit goes on
 * lines of its own after it.
 */
export function exampleLines(example: string, width: number): string[] {
  if (example.length + 2 <= width) return [`  ${example}`];
  const words = shellWords(example);
  const at = words.findIndex((w) => w.startsWith('#'));
  const command = at < 0 ? words : words.slice(0, at);
  const comment = at < 0 ? [] : words.slice(at + (words[at] === '#' ? 1 : 0));
  const lines = wrapWords(command, width - 6).map((ws) => ws.join(' '));
  return [
    ...lines.map((l, i) => `${i === 0 ? '  ' : '    '}${l}${i < lines.length - 1 ? ' \\' : ''}`),
    ...(comment.length ? wrap(comment.join(' '), width - 6).map((l) => `    # ${l}`) : []),
  ];
}

/** A command line's words as a shell splits them: at blanks outside quotes, quotes and escapes kept as written. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '\\' && quote !== "'" && i + 1 < line.length) {
      cur += ch + line[++i]!;
      continue;
    }
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === ' ') {
      if (cur) words.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  return cur ? [...words, cur] : words;
}

function flagHead(name: string, f: FlagSpec): string {
  const short = f.short ? `-${f.short}, ` : '';
  return `${short}--${name}${f.kind === 'boolean' ? '' : ` ${f.value ?? 'VALUE'}`}`;
}

function flagText(f: FlagSpec): string {
  const notes = [
    f.required ? 'required' : '',
    f.choices ? `one of ${f.choices.join(', ')}` : '',
    f.multiple ? 'repeatable' : '',
    f.default !== undefined ? `default ${f.default}` : '',
  ].filter(Boolean);
  return `${f.help}${notes.length ? ` (${notes.join('; ')})` : ''}`;
}

function exitLines(names: readonly ExitName[], width: number): string[] {
  const sorted = [...names].sort((a, b) => exitCodes[a].code - exitCodes[b].code);
  const col = Math.max(...sorted.map((n) => n.length)) + 9;
  return sorted.flatMap((n) =>
    entry(`${String(exitCodes[n].code).padStart(3)}  ${n}`, exitCodes[n].summary, col, width),
  );
}

import type { FlagSpec, FlagSpecs } from './args.ts';
import { commonExits, commonFlags, type Command } from './command.ts';
import { exitCodes, type ExitName } from './exit-codes.ts';

/** `haul --help`: every command in one line, the common flags, every exit code. */
export function overview(commands: readonly Command[], version: string): string {
  const w = Math.max(...commands.map((c) => c.name.length));
  return [
    `haul ${version}: operate live migrations of OpenVZ/Virtuozzo containers over NATS.`,
    '',
    'Usage: haul COMMAND [flags]        haul COMMAND --help | haul help COMMAND        haul --version',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '  init-cluster  identities, permissions, CA and certificates of a cluster (no NATS; init-cluster --help)',
    '',
    'Flags of every command:',
    ...flagLines(commonFlags),
    '',
    'Exit codes (docs/cli.md):',
    ...exitLines(Object.keys(exitCodes) as ExitName[]),
  ].join('\n');
}

/** `haul CMD --help`: what it does, its usage, its flags with their defaults, examples and its exit codes. */
export function commandHelp(c: Command): string {
  return [
    `haul ${c.name}: ${c.summary}`,
    '',
    c.description,
    '',
    `Usage: ${usageOf(c)}`,
    ...(c.positionals.length
      ? ['', 'Arguments:', ...c.positionals.map((p) => `  ${p.name.padEnd(22)}  ${p.help}`)]
      : []),
    '',
    'Flags:',
    ...flagLines({ ...c.flags, ...commonFlags }),
    '',
    'Examples:',
    ...c.examples.map((e) => `  ${e}`),
    '',
    'Exit codes:',
    ...exitLines([...new Set([...c.exits, ...commonExits])]),
  ].join('\n');
}

/** haul migrate --ct ID --from NODE --to NODE [flags] */
export function usageOf(c: Command): string {
  const required = Object.entries(c.flags)
    .filter(([, f]) => f.required)
    .map(([n, f]) => `--${n} ${f.value ?? 'VALUE'}`);
  const pos = c.positionals.map((p) => (p.required ? p.name : `[${p.name}]`));
  return ['haul', c.name, ...pos, ...required, '[flags]'].join(' ');
}

const helpWidth = 110;

function flagLines(flags: FlagSpecs): string[] {
  const heads = Object.entries(flags).map(([n, f]) => [flagHead(n, f), flagText(f)] as const);
  const w = Math.min(26, Math.max(...heads.map(([h]) => h.length)));
  const indent = ' '.repeat(w + 4);
  return heads.flatMap(([h, t]) => {
    const text = wrap(t, helpWidth - indent.length);
    const first = h.length > w ? [`  ${h}`, `${indent}${text[0]}`] : [`  ${h.padEnd(w)}  ${text[0]}`];
    return [...first, ...text.slice(1).map((l) => `${indent}${l}`)];
  });
}

/** Words into lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const word of text.split(' ')) {
    if (cur && cur.length + 1 + word.length > width) {
      lines.push(cur);
      cur = word;
    } else cur = cur ? `${cur} ${word}` : word;
  }
  return [...lines, cur];
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

function exitLines(names: readonly ExitName[]): string[] {
  const sorted = [...names].sort((a, b) => exitCodes[a].code - exitCodes[b].code);
  const w = Math.max(...sorted.map((n) => n.length));
  const indent = ' '.repeat(w + 9);
  return sorted.flatMap((n) => {
    const [first, ...more] = wrap(exitCodes[n].summary, helpWidth - indent.length);
    return [
      `  ${String(exitCodes[n].code).padStart(3)}  ${n.padEnd(w)}  ${first}`,
      ...more.map((l) => indent + l),
    ];
  });
}

import { parseArgs } from 'node:util';
import { UsageError } from './errors.ts';

/** One flag of a command, as the parser checks it and `--help` shows it. */
export type FlagSpec = {
  /** What the value is: a word, a whole or decimal number, a duration (500ms, 30s, 5m, 1h) or none (boolean). */
  kind: 'string' | 'int' | 'number' | 'duration' | 'boolean';
  short?: string;
  /** The value's placeholder in help (NODE, PATH, …). */
  value?: string;
  help: string;
  /** Shown in help; the code applies it (the coordinator's defaults are its own). */
  default?: string;
  choices?: readonly string[];
  multiple?: boolean;
  required?: boolean;
};

export type FlagSpecs = Record<string, FlagSpec>;
export type PositionalSpec = { name: string; help: string; required: boolean };

/** The parsed command line of one command: typed accessors over the flags it declares. */
export type Args = {
  positionals: string[];
  has(flag: string): boolean;
  str(flag: string): string | undefined;
  list(flag: string): string[];
  /** An int or number flag's value. */
  num(flag: string): number | undefined;
  /** A duration in milliseconds. */
  ms(flag: string): number | undefined;
  bool(flag: string): boolean;
};

/**
 * Parse argv against a command's flags with node:util parseArgs. Lenient mode plus our own checks, so that an
 * unknown flag is refused with the closest known one suggested (strict mode only says it is unknown), a string
 * flag followed by another flag is refused instead of swallowing it, and a boolean never takes a value.
 */
export function parseCommandLine(
  command: string,
  argv: string[],
  flags: FlagSpecs,
  positionals: readonly PositionalSpec[],
): Args {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, f] of Object.entries(flags))
    options[name] = {
      type: f.kind === 'boolean' ? 'boolean' : 'string',
      ...(f.short ? { short: f.short } : {}),
      multiple: true,
    };
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const values = new Map<string, string[]>();
  const pos: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') pos.push(t.value);
    if (t.kind !== 'option') continue;
    const spec = flags[t.name];
    if (!spec) throw new UsageError(unknownFlag(t.rawName, Object.keys(flags)), command);
    values.set(t.name, [...(values.get(t.name) ?? []), checkValue(command, t.rawName, spec, t)]);
  }
  checkPositionals(command, pos, positionals);
  for (const [name, f] of Object.entries(flags)) {
    const v = values.get(name);
    if (f.required && !v)
      throw new UsageError(`missing --${name} ${f.value ?? 'VALUE'} (${f.help})`, command);
    if (v && v.length > 1 && !f.multiple && f.kind !== 'boolean')
      throw new UsageError(`--${name} given ${v.length} times; it takes one value`, command);
    for (const x of v ?? []) checkKind(command, name, f, x);
  }
  return argsOf(values, pos);
}

type OptionToken = { rawName: string; value?: string | undefined; inlineValue?: boolean | undefined };

function checkValue(command: string, raw: string, spec: FlagSpec, t: OptionToken): string {
  if (spec.kind === 'boolean') {
    if (t.value !== undefined) throw new UsageError(`${raw} takes no value (got ${t.value})`, command);
    return '';
  }
  // In lenient mode parseArgs takes the next word whatever it is: `--ct --from a` would make "--from" the CT. A
  // negative number is a value, and checkKind says what is wrong with it.
  const isFlag = (v: string) => v.startsWith('-') && v !== '-' && !(numeric(spec) && /^-[0-9.]/.test(v));
  if (t.value === undefined || (!t.inlineValue && isFlag(t.value)))
    throw new UsageError(`${raw} needs a value (${spec.value ?? 'VALUE'})`, command);
  // An empty value (`--migration "$ID"` with ID unset) is never what was meant: as a filter it would match everything.
  if (t.value === '')
    throw new UsageError(`${raw} needs a value (${spec.value ?? 'VALUE'}), not an empty one`, command);
  return t.value;
}

const numeric = (spec: FlagSpec) => spec.kind === 'int' || spec.kind === 'number' || spec.kind === 'duration';

function checkKind(command: string, name: string, f: FlagSpec, v: string): void {
  if (f.choices && !f.choices.includes(v)) {
    const near = closest(v, f.choices);
    throw new UsageError(
      `--${name}: ${JSON.stringify(v)} is not one of ${f.choices.join(', ')}${near ? ` (did you mean ${near}?)` : ''}`,
      command,
    );
  }
  if (f.kind === 'int' && !/^[0-9]+$/.test(v))
    throw new UsageError(`--${name}: ${JSON.stringify(v)} is not a whole number`, command);
  if (f.kind === 'number' && !/^[0-9]+(\.[0-9]+)?$/.test(v))
    throw new UsageError(`--${name}: ${JSON.stringify(v)} is not a number`, command);
  if (f.kind === 'duration' && parseDuration(v) === undefined)
    throw new UsageError(
      `--${name}: ${JSON.stringify(v)} is not a duration (e.g. 500ms, 30s, 5m, 1h)`,
      command,
    );
}

function checkPositionals(command: string, pos: string[], specs: readonly PositionalSpec[]): void {
  const missing = specs.find((p, i) => p.required && pos[i] === undefined);
  if (missing) throw new UsageError(`missing ${missing.name} (${missing.help})`, command);
  if (pos.length > specs.length)
    throw new UsageError(
      `unexpected argument ${JSON.stringify(pos[specs.length])}${specs.length ? '' : ` (${command} takes only flags)`}`,
      command,
    );
}

function argsOf(values: Map<string, string[]>, positionals: string[]): Args {
  const str = (f: string) => values.get(f)?.at(-1);
  return {
    positionals,
    has: (f) => values.has(f),
    str,
    list: (f) => values.get(f) ?? [],
    num: (f) => (str(f) === undefined ? undefined : Number(str(f))),
    ms: (f) => {
      const v = str(f);
      return v === undefined ? undefined : parseDuration(v);
    },
    bool: (f) => values.has(f),
  };
}

/** "unknown flag --ctid (did you mean --ct?)" */
export function unknownFlag(raw: string, known: readonly string[]): string {
  const name = raw.replace(/^-+/, '');
  const near = raw.startsWith('--') ? closest(name, known) : undefined;
  return `unknown flag ${raw}${near ? ` (did you mean --${near}?)` : ''}`;
}

/** Milliseconds of "500ms", "30s", "5m", "1h" or a bare number of seconds; undefined when it is none of these. */
export function parseDuration(s: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(s);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000;
  return Math.round(Number(m[1]) * unit);
}

/**
 * The known word closest to `word`: one it starts or is started by, else the nearest by edit distance within a
 * third of its length (at least 2), as git and kubectl suggest; undefined when nothing is close.
 */
export function closest(word: string, known: readonly string[]): string | undefined {
  const prefixed = known.filter((k) => k.startsWith(word) || word.startsWith(k));
  if (prefixed.length === 1) return prefixed[0];
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(word, k);
    if (!best || d < best.d) best = { k, d };
  }
  return best && best.d <= Math.max(2, Math.floor(word.length / 3)) ? best.k : undefined;
}

/** Levenshtein distance (insert, delete, substitute), two rows at a time. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

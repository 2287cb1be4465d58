import type { ConfigSchemaName } from '@haul/schemas';
import type { LoadedSettings, SettingSource } from './load.ts';
import { settingsOf, type Setting } from './spec.ts';

const show = (v: unknown): string =>
  Array.isArray(v) ? v.map(String).join(',') : typeof v === 'string' ? (v === '' ? "''" : v) : String(v);

const sourceText = (src: SettingSource | undefined): string => {
  if (!src) return '';
  switch (src.kind) {
    case 'default':
      return 'default';
    case 'file':
      return 'file';
    case 'env':
      return `env ${src.name}`;
    case 'from':
      return `from ${src.key}`;
  }
};

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

/**
 * The effective settings, one per line: key, value (secrets as `(secret)`, unset as `-`) and where the value came
 * from (file, env NAME, default). What `--check-config` prints.
 */
export function renderEffective(loaded: LoadedSettings<unknown>): string {
  const values = loaded.values as Record<string, unknown>;
  const rows = [['setting', 'value', 'from']];
  for (const s of settingsOf(loaded.schema)) {
    const v = s.path.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], values);
    const shown = v === undefined ? '-' : s.secret ? '(secret)' : show(v);
    rows.push([s.key, shown, sourceText(loaded.sources.get(s.key))]);
  }
  return `${table(rows)}\n`;
}

const defaultText = (s: Setting): string =>
  s.required
    ? 'required'
    : s.defaultFrom
      ? `default: ${s.defaultFrom}`
      : s.default === undefined
        ? 'optional'
        : `default ${show(s.default)}`;

/** Words wrapped to lines of at most `width` characters, each indented. */
function wrap(text: string, indent: string, width = 112): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines.join('\n');
}

/** Every setting of a service for `--help`: key, environment variable, default, and what it does. */
export function renderSettingsHelp(schema: ConfigSchemaName): string {
  return settingsOf(schema)
    .map((s) => `  ${s.key}  ${s.env ?? ''}  (${defaultText(s)})\n${wrap(s.description, '      ')}`)
    .join('\n');
}

/** The whole `--help` of a service binary. */
export function renderServiceHelp(o: { summary: string; schema: ConfigSchemaName; binary: string }): string {
  return `${o.summary}

Usage: ${o.binary} [--config FILE] [--check-config]

  --config FILE    read the settings from FILE (JSON; docs/install.md). Environment variables override it, defaults
                   fill the rest. Without it, the environment and the defaults only.
  --check-config   check the settings (and the files they name), print the effective ones with secrets hidden and
                   where each came from, and exit: 0 when the service could start, 2 naming the bad setting.
  --help, -h       this text

Settings (key in the config file, environment variable, default):
${renderSettingsHelp(o.schema)}
`;
}

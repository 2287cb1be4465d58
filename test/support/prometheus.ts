import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Where promtool is on PATH, or an error saying how to install it: a test that needs it fails rather than skips. */
export function promtoolBinary(): string {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'promtool'))) return join(dir, 'promtool');
  }
  throw new Error(
    'promtool not found: run `npm run bootstrap` (it installs the Debian package prometheus, which has promtool)',
  );
}

/** One sample of a Prometheus text exposition: `name{label="value",…} value`. */
export type Sample = { name: string; labels: Record<string, string>; value: number };

export type Exposition = {
  text: string;
  samples: Sample[];
  /** Metric family → its TYPE line. */
  types: Map<string, string>;
  /** The samples of `name` whose labels include every one of `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
  /** The one value of `name` with `labels` (0 when no such sample: a labelled counter not incremented yet). */
  value(name: string, labels?: Record<string, string>): number;
};

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?[0-9]+)?$/;
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y;
const suffixes = ['_bucket', '_sum', '_count', '_total', '_created'];

/**
 * Parse the text format (version 0.0.4) strictly enough to catch a broken exposition: every line is a comment, a
 * HELP/TYPE line or a sample whose family was typed, with well-formed labels and a number as its value.
 */
export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const typed = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (typed) {
      types.set(typed[1]!, typed[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = sampleLine.exec(line);
    if (!m) throw new Error(`line ${i + 1} is not a sample: ${line}`);
    const [, name, body, raw] = m as unknown as [string, string, string | undefined, string];
    const family = [name, ...suffixes.filter((s) => name.endsWith(s)).map((s) => name.slice(0, -s.length))];
    if (!family.some((f) => types.has(f)))
      throw new Error(`line ${i + 1}: ${name} has no TYPE line before it`);
    // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes "Nan" for an event
    // loop lag that had no sample since the last scrape).
    const value = /^nan$/i.test(raw)
      ? NaN
      : /^[+-]?inf$/i.test(raw)
        ? (raw.startsWith('-') ? -1 : 1) * Infinity
        : Number(raw);
    if (Number.isNaN(value) && !/^nan$/i.test(raw))
      throw new Error(`line ${i + 1}: value ${raw} is not a number`);
    samples.push({ name, labels: parseLabels(body ?? '', i + 1), value });
  }
  const find = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    text,
    samples,
    types,
    find,
    value(name, labels = {}) {
      const found = find(name, labels);
      if (found.length > 1)
        throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
      return found[0]?.value ?? 0;
    },
  };
}

function parseLabels(body: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  labelPair.lastIndex = 0;
  while (labelPair.lastIndex < body.length) {
    const at = labelPair.lastIndex;
    const m = labelPair.exec(body);
    if (!m) throw new Error(`line ${line}: bad labels at ${body.slice(at)}`);
    labels[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  }
  return labels;
}

/** GET a /metrics URL and parse it. */
export async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain')) throw new Error(`${url}: content-type ${type}`);
  return parseExposition(await res.text());
}

/**
 * Scrape until `ok` holds (metrics have no event to await: a gauge is read when asked), or fail after `timeoutMs`
 * with what the last scrape said.
 */
export async function scrapeUntil(
  url: string,
  ok: (e: Exposition) => boolean,
  timeoutMs = 30_000,
): Promise<Exposition> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const e = await scrape(url);
    if (ok(e)) return e;
    if (Date.now() > until)
      throw new Error(
        `${url}: condition not met in ${timeoutMs} ms; last scrape:\n${e.samples.map((s) => `${s.name} ${JSON.stringify(s.labels)} ${s.value}`).join('\n')}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

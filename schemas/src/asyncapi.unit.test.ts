import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Parser } from '@asyncapi/parser';
import { dump } from 'js-yaml';
import {
  asyncApiMarkdownPath,
  asyncApiPath,
  buildAsyncApi,
  channels,
  renderAsyncApi,
  renderAsyncApiMarkdown,
} from '../scripts/render-asyncapi.ts';
import { schemaIds } from './schema-ids.ts';

/** What the maintained parser finds wrong: errors and warnings (severity 0 and 1; infos and hints are advice). */
async function problems(text: string): Promise<string[]> {
  const { document, diagnostics } = await new Parser().parse(text);
  const bad = diagnostics
    .filter((d) => Number(d.severity) <= 1) // Error 0, Warning 1 (DiagnosticSeverity)
    .map((d) => `${d.code} at ${d.path.join('/')}: ${d.message}`);
  if (!document && bad.length === 0) bad.push('no document');
  return bad;
}

describe('the AsyncAPI document', () => {
  it('is fresh: docs/asyncapi.yaml and docs/asyncapi.md are what the schemas and conventions give (run `npm run gen:asyncapi`)', async () => {
    assert.ok(
      readFileSync(asyncApiPath, 'utf8') === (await renderAsyncApi()),
      'docs/asyncapi.yaml is stale: run `npm run gen:asyncapi` and commit it',
    );
    assert.ok(
      readFileSync(asyncApiMarkdownPath, 'utf8') === (await renderAsyncApiMarkdown()),
      'docs/asyncapi.md is stale: run `npm run gen:asyncapi` and commit it',
    );
  });

  it('has every top-level schema as a message of some channel', () => {
    const used = new Set(channels().flatMap((c) => [...c.messages, ...(c.reply ? [c.reply] : [])]));
    assert.deepEqual(
      Object.keys(schemaIds).filter((n) => !used.has(n as keyof typeof schemaIds)),
      [],
    );
  });

  it('is valid AsyncAPI 3.0 for @asyncapi/parser, which catches a broken reference', async () => {
    const text = readFileSync(asyncApiPath, 'utf8');
    assert.deepEqual(await problems(text), []);
    const { document } = await new Parser().parse(text);
    assert.equal(document?.version(), '3.0.0');
    assert.ok(
      document
        ?.channels()
        .all()
        .some((c) => c.address() === 'haul.cmd.{node}.{executor}'),
    );
    // The check has teeth: the same document with one message gone from components is refused.
    const broken = buildAsyncApi() as { components: { messages: Record<string, unknown> } };
    delete broken.components.messages['event'];
    assert.notDeepEqual(await problems(dump(broken)), []);
  });
});

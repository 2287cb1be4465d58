import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';

const run = promisify(execFile);

/** What a process that logs one line through createLoggerWith writes on stderr. */
async function stderrOf(pretty: boolean): Promise<string> {
  const script = `
    import { createLoggerWith } from ${JSON.stringify(new URL('./logger.ts', import.meta.url).href)};
    createLoggerWith('haul-test', 'node-a', { level: 'info', pretty: ${pretty} }).info({ step: 'restore' }, 'one line');
  `;
  const { stderr } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    env: { ...process.env, NO_COLOR: '1' },
  });
  return stderr;
}

describe("a service's root logger", () => {
  it('writes one JSON line per entry on stderr by default, with the service and node', async () => {
    // Given a logger from the default settings
    // When it logs one entry
    const lines = (await stderrOf(false)).trim().split('\n');

    // Then stderr holds that entry as one JSON object
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(
      [entry['level'], entry['service'], entry['node'], entry['step'], entry['msg']],
      [30, 'haul-test', 'node-a', 'restore', 'one line'],
    );
  });

  it('writes human-readable lines when asked (pretty), through pino-pretty in the same process', async () => {
    // Given a logger with pretty: true
    // When it logs one entry
    const out = await stderrOf(true);

    // Then the entry is a line for a reader: its level and message, then its fields, no JSON
    assert.match(out, /INFO.*: one line\n/);
    assert.match(out, /step: "restore"/);
    assert.ok(!out.trimStart().startsWith('{'), out);
  });
});

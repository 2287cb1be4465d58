import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createValidators, schemaDir } from '@haul/schemas';
import { requestDefaults, withRequestDefaults } from './request.ts';

const schema = JSON.parse(readFileSync(`${schemaDir}/migrate-request.schema.json`, 'utf8')) as {
  properties: Record<string, { default?: unknown }>;
};
const minimal = { requestId: 'req-1', ctid: '101', source: 'node-a', target: 'node-b' };

describe("a migrate request's defaults", () => {
  it('are exactly the `default`s of migrate-request.schema.json, field by field', () => {
    const inSchema = Object.fromEntries(
      Object.entries(schema.properties)
        .filter(([, p]) => p.default !== undefined)
        .map(([k, p]) => [k, p.default]),
    );
    assert.deepEqual({ ...requestDefaults }, inSchema);
  });

  it('given a request that leaves them out, then the state holds each default, and the request is valid so', () => {
    const full = withRequestDefaults(minimal);
    assert.deepEqual(full, { ...minimal, ...requestDefaults });
    assert.equal(createValidators().validate('migrateRequest', full).ok, true);
  });

  it('given a request that sets them, then its own values stand', () => {
    const asked = {
      ...minimal,
      mode: 'restart',
      preDump: 'off',
      maxIterations: 3,
      downtimePolicy: 'proceed',
    } as const;
    assert.deepEqual(withRequestDefaults(asked), asked);
  });
});

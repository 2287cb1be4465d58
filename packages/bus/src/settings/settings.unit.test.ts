import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  configSchemaIds,
  loadSchemaDocuments,
  type ConfigSchemaName,
  type CoordinatorConfig,
  type NodeAgentConfig,
} from '@haul/schemas';
import { defaultFrozenLeaseMs, limits, maxFrozenLeaseMs, streamStallMs } from '../conventions.ts';
import { ConfigError, configFromEnv, loadSettings } from './load.ts';
import { renderEffective, renderServiceHelp } from './render.ts';
import { settingsOf } from './spec.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-settings-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** A config file with this content (a string is written as is). */
function file(content: unknown): string {
  const p = join(dir, `c${n++}.json`);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}
const schemas = Object.keys(configSchemaIds) as ConfigSchemaName[];

/** The ConfigError a load throws: its field and message. */
function refusal(o: Parameters<typeof loadSettings>[0]): { field: string; message: string } {
  try {
    loadSettings(o);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return { field: err.field, message: err.message };
  }
  assert.fail('the settings were accepted');
}

describe('service settings: config file, environment, defaults', () => {
  it('the environment overrides the file, the file the defaults, and each value says where it came from', () => {
    const f = file({
      node: 'node-a',
      nats: { servers: ['tls://n1:4222', 'tls://n2:4222'] },
      maxLeaseMs: 5000,
    });
    const l = loadSettings<NodeAgentConfig>({
      schema: 'nodeAgentConfig',
      file: f,
      env: {
        HAUL_MAX_LEASE_MS: '7000',
        HAUL_SHARED_ROOTS: '/s1:/s2:',
        HAUL_INSECURE: '1',
        HAUL_UNRELATED: 'x',
      },
    });
    assert.deepEqual(l.values.nats.servers, ['tls://n1:4222', 'tls://n2:4222']);
    assert.equal(l.values.maxLeaseMs, 7000);
    assert.deepEqual(l.values.sharedRoots, ['/s1', '/s2']);
    assert.equal(l.values.insecure, true);
    assert.equal(l.values.imageRoot, '/var/local/haul');
    assert.deepEqual(l.sources.get('nats.servers'), { kind: 'file', file: f });
    assert.deepEqual(l.sources.get('maxLeaseMs'), { kind: 'env', name: 'HAUL_MAX_LEASE_MS' });
    assert.deepEqual(l.sources.get('stateDir'), { kind: 'default' });
    assert.equal(l.sources.get('nkeySeedFile'), undefined);
  });

  it('an empty variable is unset; a list in the environment is split on its separator', () => {
    const l = loadSettings<CoordinatorConfig>({
      schema: 'coordinatorConfig',
      env: { HAUL_NATS_URL: 'nats://a:4222, nats://b:4222', HAUL_REPLICAS: '' },
    });
    assert.deepEqual(l.values.nats.servers, ['nats://a:4222', 'nats://b:4222']);
    assert.equal(l.values.replicas, undefined);
  });

  it('a bad value names the field and where it was set: the variable, or the file', () => {
    assert.deepEqual(refusal({ schema: 'coordinatorConfig', env: { HAUL_MAX_PER_NODE: 'many' } }), {
      field: 'maxPerNode',
      message: 'maxPerNode (HAUL_MAX_PER_NODE="many") must be integer',
    });
    const f = file({ frozenLeaseMs: 10 });
    assert.deepEqual(refusal({ schema: 'coordinatorConfig', file: f, env: {} }), {
      field: 'frozenLeaseMs',
      message: `frozenLeaseMs in ${f} must be >= 1000`,
    });
    const r = refusal({ schema: 'coordinatorConfig', env: { HAUL_INSECURE: 'yes' } });
    assert.equal(r.field, 'insecure');
    const deep = refusal({
      schema: 'imageStreamerConfig',
      file: file({ node: 'a', roots: ['relative'] }),
      env: {},
    });
    assert.equal(deep.field, 'roots.0');
  });

  it('a key that is no setting, a missing required one and a half client certificate are refused by name', () => {
    const f = file({ nats: { severs: ['x'] } });
    assert.deepEqual(refusal({ schema: 'coordinatorConfig', file: f, env: {} }), {
      field: 'nats.severs',
      message: `nats.severs in ${f} is not a setting (--help lists them)`,
    });
    assert.deepEqual(refusal({ schema: 'nodeAgentConfig', env: {} }), {
      field: 'node',
      message: 'node is required: set "node" in the config file or HAUL_NODE',
    });
    assert.equal(
      refusal({ schema: 'coordinatorConfig', env: { HAUL_NATS_TLS_CERT_FILE: '/c.pem' } }).field,
      'nats.tls',
    );
  });

  it('a variable haul no longer reads is refused by name, saying what replaced it, not ignored', () => {
    const r = refusal({
      schema: 'imageStreamerConfig',
      env: { HAUL_NATS_CREDS_FILE: '/etc/haul/creds.json' },
    });
    assert.equal(r.field, 'HAUL_NATS_CREDS_FILE');
    assert.match(r.message, /is no longer read .* a NATS \.creds file is HAUL_CREDS_FILE \(credsFile\)/);
  });

  it('a file that is not JSON is refused with its line and column', () => {
    const f = file('{\n  "node": "node-a",\n  "imageRoot": "/x",\n}\n');
    const r = refusal({ schema: 'nodeAgentConfig', file: f, env: {} });
    assert.match(r.message, /is not JSON at line 4, column 1/);
    assert.match(refusal({ schema: 'nodeAgentConfig', file: file('[1]'), env: {} }).message, /a JSON object/);
    assert.match(
      refusal({ schema: 'nodeAgentConfig', file: join(dir, 'none.json'), env: {} }).message,
      /ENOENT/,
    );
  });

  it('the streamers’ CA is the NATS CA unless set apart', () => {
    const base = { HAUL_NODE: 'node-a', HAUL_STREAM_ROOTS: '/r', HAUL_TLS_CA_FILE: '/ca.pem' };
    const l = loadSettings<{ data: { tls?: { caFile?: string } } }>({
      schema: 'imageStreamerConfig',
      env: base,
    });
    assert.equal(l.values.data.tls?.caFile, '/ca.pem');
    assert.deepEqual(l.sources.get('data.tls.caFile'), { kind: 'from', key: 'nats.tls.caFile' });
    const own = loadSettings<{ data: { tls?: { caFile?: string } } }>({
      schema: 'imageStreamerConfig',
      env: { ...base, HAUL_STREAM_TLS_CA_FILE: '/peers.pem' },
    });
    assert.equal(own.values.data.tls?.caFile, '/peers.pem');
  });

  it('--check-config prints every setting with its source and never a secret', () => {
    const l = loadSettings({
      schema: 'coordinatorConfig',
      file: file({ nats: { password: 'hunter2', user: 'u' } }),
      env: { HAUL_NATS_TOKEN: 's3cret' },
    });
    const text = renderEffective(l);
    assert.ok(!text.includes('hunter2') && !text.includes('s3cret'), text);
    assert.match(text, /^nats\.password\s+\(secret\)\s+file$/m);
    assert.match(text, /^nats\.token\s+\(secret\)\s+env HAUL_NATS_TOKEN$/m);
    assert.match(text, /^maxPerNode\s+2\s+default$/m);
    assert.match(text, /^replicas\s+-\s*$/m);
  });

  it('the settings a world puts in the environment make a config file that loads to the same values', () => {
    const env = { HAUL_NODE: 'node-a', HAUL_SHARED_ROOTS: '/a:/b', HAUL_LOG_PRETTY: '0', PATH: '/bin' };
    const { config, rest } = configFromEnv('nodeAgentConfig', env);
    assert.deepEqual(rest, { PATH: '/bin' });
    const fromFile = loadSettings({ schema: 'nodeAgentConfig', file: file(config), env: rest }).values;
    assert.deepEqual(fromFile, loadSettings({ schema: 'nodeAgentConfig', env }).values);
  });
});

describe('the settings schemas', () => {
  it('every setting has a variable of its own, a description, and is listed in --help', () => {
    for (const schema of schemas) {
      const settings = settingsOf(schema);
      const envs = settings.map((s) => s.env);
      assert.ok(
        settings.every((s) => s.env !== undefined && s.description !== ''),
        `${schema}: ${settings
          .filter((s) => !s.env || !s.description)
          .map((s) => s.key)
          .join(', ')}`,
      );
      assert.equal(new Set(envs).size, envs.length, `${schema}: a variable names two settings`);
      const help = renderServiceHelp({ schema, summary: 'x', binary: 'x' });
      for (const s of settings) assert.ok(help.includes(`  ${s.key}  ${s.env!}  (`), s.key);
    }
  });

  it('a setting means the same in every service (one definition of each)', () => {
    const all = schemas.flatMap((schema) => settingsOf(schema));
    for (const s of all) {
      const same = all.filter((t) => t.env === s.env);
      for (const t of same) assert.deepEqual({ ...t, description: '' }, { ...s, description: '' }, s.env);
    }
  });

  it('defaults are the limits of conventions.ts (one fact)', () => {
    const by = (schema: ConfigSchemaName, key: string) => settingsOf(schema).find((s) => s.key === key)!;
    assert.equal(by('nodeAgentConfig', 'topologyWaitMs').default, limits.topologyWaitMs);
    assert.equal(by('imageStreamerConfig', 'topologyWaitMs').default, limits.topologyWaitMs);
    assert.equal(by('nodeAgentConfig', 'maxLeaseMs').default, maxFrozenLeaseMs);
    assert.equal(by('coordinatorConfig', 'frozenLeaseMs').default, defaultFrozenLeaseMs);
    assert.equal(by('coordinatorConfig', 'streamStallMs').default, streamStallMs);
  });

  it('the stall time is judged by reports that are still there: ten at least, within half their lifetime', () => {
    const schema = loadSchemaDocuments().find(
      (d) => d.$id === configSchemaIds.coordinatorConfig,
    ) as unknown as {
      properties: { streamStallMs: { minimum: number; maximum: number } };
    };
    const { minimum, maximum } = schema.properties.streamStallMs;
    assert.ok(minimum >= 10 * limits.progressEveryMs, `minimum ${minimum}`);
    assert.ok(maximum <= limits.progressTtlMs / 2, `maximum ${maximum}`);
  });
});

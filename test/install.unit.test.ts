import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { badSettingsExit, loadSettings } from '@haul/bus';
import type { ImageStreamerConfig } from '@haul/schemas';
import { createTestIdentities, ensureBuilt } from './support/index.ts';
import { repoRoot } from './support/paths.ts';

/** Each service: its unit, its example config, its settings schema and its bundle. */
const services = [
  { name: 'coordinator', schema: 'coordinatorConfig', user: 'haul-coordinator' },
  { name: 'node-agent', schema: 'nodeAgentConfig', user: 'root' },
  { name: 'image-streamer', schema: 'imageStreamerConfig', user: 'haul-streamer' },
] as const;
const unitFile = (name: string) => join(repoRoot, 'deploy', 'systemd', `haul-${name}.service`);
const exampleConfig = (name: string) => join(repoRoot, 'deploy', 'config', `${name}.json`);
const bundle = (name: string) => join(repoRoot, 'services', name, 'dist', 'main.mjs');

/** A unit's [Service] (or other section's) settings, each key with every value it is given. */
function unitKeys(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

describe('deploy/systemd: the units', () => {
  it('systemd-analyze verify accepts them without a warning', (t) => {
    if (spawnSync('systemd-analyze', ['--version']).error) {
      t.skip('systemd-analyze is not installed (Debian: apt-get install systemd)');
      return;
    }
    const r = spawnSync('systemd-analyze', ['verify', ...services.map((s) => unitFile(s.name))], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '');
  });

  it('restart crash-only services for ever, except after a bad setting; each reads /etc/haul/<service>.json', () => {
    for (const s of services) {
      const k = unitKeys(readFileSync(unitFile(s.name), 'utf8'));
      assert.deepEqual(k.get('Restart'), ['always'], s.name);
      assert.deepEqual(k.get('StartLimitIntervalSec'), ['0'], s.name);
      assert.deepEqual(k.get('RestartPreventExitStatus'), [String(badSettingsExit)], s.name);
      assert.deepEqual(k.get('User'), [s.user], s.name);
      assert.deepEqual(k.get('ExecStart'), [
        `/usr/bin/node /opt/haul/services/${s.name}/dist/main.mjs --config /etc/haul/${s.name}.json`,
      ]);
    }
  });

  it('the agent sets nothing its CTs would inherit, and a held dump outlives its restart (KillMode=process)', () => {
    const k = unitKeys(readFileSync(unitFile('node-agent'), 'utf8'));
    assert.deepEqual(k.get('KillMode'), ['process']);
    const inherited = [
      'SystemCallFilter',
      'SystemCallArchitectures',
      'NoNewPrivileges',
      'CapabilityBoundingSet',
      'OOMScoreAdjust',
      'LockPersonality',
      'RestrictRealtime',
      'RestrictNamespaces',
      'ProtectSystem',
      'PrivateTmp',
      'PrivateDevices',
      'ReadWritePaths',
      'UMask',
      'LimitNOFILE',
    ];
    assert.deepEqual(
      inherited.filter((key) => k.has(key)),
      [],
    );
  });

  it('the streamer may write exactly below the roots of its example config', () => {
    const k = unitKeys(readFileSync(unitFile('image-streamer'), 'utf8'));
    const cfg = JSON.parse(readFileSync(exampleConfig('image-streamer'), 'utf8')) as ImageStreamerConfig;
    const writable = k
      .get('ReadWritePaths')!
      .join(' ')
      .split(/\s+/)
      .map((p) => p.replace(/^-/, ''));
    assert.deepEqual(writable.sort(), [...cfg.roots].sort());
  });
});

describe('deploy/config: the example config files', () => {
  it('are valid settings of their service, with every file under /etc/haul', () => {
    for (const s of services) {
      const file = exampleConfig(s.name);
      const l = loadSettings<Record<string, unknown>>({
        schema: s.schema,
        file,
        env: {},
      });
      assert.equal(l.values['insecure'], false);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/"(\/[^"]*\.(?:nk|pem|json))"/g)) assert.match(m[1]!, /^\/etc\/haul\//);
    }
  });
});

describe('deploy/haul.Dockerfile: the emulated and the host targets', () => {
  const text = readFileSync(join(repoRoot, 'deploy', 'haul.Dockerfile'), 'utf8');
  /** Each stage's lines by its name. */
  const stages = new Map<string, string[]>();
  let current = '';
  for (const line of text.split('\n')) {
    const m = /^FROM\s+\S+\s+AS\s+(\S+)/i.exec(line);
    if (m) stages.set((current = m[1]!), []);
    else if (current) stages.get(current)!.push(line);
  }

  it('the host image has no emulator on PATH or on disk; the emulated one puts them first', () => {
    const host = stages.get('host')!.join('\n');
    assert.doesNotMatch(host.match(/^ENV PATH=.*$/m)![0], /host-emulators/);
    assert.match(host, /rm -rf \/opt\/haul\/host-emulators /);
    assert.match(stages.get('emulated')!.join('\n'), /^ENV PATH=\/opt\/haul\/host-emulators\/bin:/m);
  });

  it('compose.yaml builds the emulated target', () => {
    const compose = readFileSync(join(repoRoot, 'compose.yaml'), 'utf8');
    const targets = [...compose.matchAll(/^\s+target: (\S+)$/gm)].map((m) => m[1]);
    assert.ok(targets.length > 0);
    assert.deepEqual([...new Set(targets)], ['emulated']);
  });
});

describe('the service binaries: --help and --check-config', () => {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'haul-check-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const ids = createTestIdentities(join(dir, 'secrets'), ['node-a']);
  const run = (name: string, args: string[]) =>
    spawnSync(process.execPath, [bundle(name), ...args], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] },
    });
  const write = (name: string, cfg: unknown) => {
    const f = join(dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(cfg));
    return f;
  };

  it('--help lists every setting with its variable', () => {
    for (const s of services) {
      const r = run(s.name, ['--help']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /--check-config/);
      assert.match(
        r.stdout,
        /^ {2}nats\.servers {2}HAUL_NATS_URL {2}\(default nats:\/\/127\.0\.0\.1:4222\)$/m,
      );
    }
  });

  it('--check-config: 0 and the effective settings, secrets hidden; 2 naming the bad setting and where', () => {
    const good = write('coordinator', {
      nkeySeedFile: ids.seedFile('coordinator'),
      identitiesFile: ids.registryFile,
      nats: { password: 'hunter2', user: 'u' },
    });
    const ok = run('coordinator', ['--config', good, '--check-config']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^nkeySeedFile\s+\S+coordinator\.nk\s+file$/m);
    assert.ok(!ok.stdout.includes('hunter2'));

    const wrongKey = write('wrong-key', {
      nkeySeedFile: ids.seedFile('scheduler'),
      identitiesFile: ids.registryFile,
    });
    const r1 = run('coordinator', ['--config', wrongKey, '--check-config']);
    assert.equal(r1.status, badSettingsExit);
    assert.match(r1.stderr, /nkeySeedFile in \S+: its key is registered as scheduler, not coordinator/);

    const ports = write('ports', {
      node: 'node-a',
      roots: ['/tmp'],
      insecure: true,
      data: { ports: '7410-7400' },
    });
    const r2 = run('image-streamer', ['--config', ports, '--check-config']);
    assert.equal(r2.status, badSettingsExit);
    assert.match(r2.stderr, /data\.ports in \S+: 7410-7400: the first port is above the last/);

    const r3 = run('node-agent', ['--check-config', '--bogus']);
    assert.equal(r3.status, badSettingsExit);
    assert.match(r3.stderr, /--bogus/);
  });
});

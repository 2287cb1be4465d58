import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { decode, type User } from '@nats-io/jwt';
import { fromSeed } from '@nats-io/nkeys';
import { ensureBuilt, natsReleases, natsServerBinary, repoRoot } from '@haul/test';
import { readIdentityFile, userJwtPermissions, type IdentitiesFile } from '@haul/bus';
import { initClusterExit } from '@haul/cli';

const run = promisify(execFile);

function haul(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'haul.mjs'), ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => resolve({ code, out, err }));
  });
}

const modeOf = (path: string): number => statSync(path).mode & 0o777;
const seedsIn = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.nk'))
    .map((f) => readFileSync(join(dir, f), 'utf8').trim());

const parent = mkdtempSync(join(tmpdir(), 'haul-init-test-'));
const out = join(parent, 'secrets');
const outJwt = join(parent, 'secrets-jwt');
let first: { code: number | null; out: string; err: string };
let jwtRun: { code: number | null; out: string; err: string };

before(async () => {
  ensureBuilt();
  first = await haul([
    'init-cluster',
    '--nodes',
    'node-a,node-b',
    '--out',
    out,
    '--host',
    '10.0.0.5',
    '--cluster',
    'c1',
  ]);
  jwtRun = await haul(['init-cluster', '--nodes', 'node-a,node-b', '--out', outJwt, '--auth', 'jwt']);
});
after(() => rmSync(parent, { recursive: true, force: true }));

/** `nats-server -t` of a configuration says it is valid, on each release haul is tested on. */
async function acceptedByEveryRelease(conf: string): Promise<void> {
  for (const release of natsReleases) {
    const { stdout, stderr } = await run(natsServerBinary(release), ['-t', '-c', conf]);
    assert.match(stdout + stderr, /is valid/, release);
  }
}
describe('haul init-cluster', () => {
  it('writes one seed per identity (0600), the public registry, the CA, the certificates and the server config', () => {
    assert.equal(first.code, initClusterExit.ok, first.err);
    assert.equal(modeOf(out), 0o700);
    const names = [
      'coordinator',
      'agent@node-a',
      'streamer@node-a',
      'agent@node-b',
      'streamer@node-b',
      'scheduler',
      'ops',
    ];
    const expected = new Map<string, number>([
      ['identities.json', 0o644],
      ['nats-server.conf', 0o644],
      ['ca.pem', 0o644],
      ['ca-key.pem', 0o600],
      ['server-cert.pem', 0o644],
      ['server-key.pem', 0o600],
      ...names.flatMap((n): [string, number][] => [
        [`${n}.nk`, 0o600],
        [`${n}-cert.pem`, 0o644],
        [`${n}-key.pem`, 0o600],
      ]),
    ]);
    assert.deepEqual(readdirSync(out).sort(), [...expected.keys()].sort());
    for (const [file, mode] of expected) assert.equal(modeOf(join(out, file)), mode, file);
    const registry = JSON.parse(readFileSync(join(out, 'identities.json'), 'utf8')) as IdentitiesFile;
    assert.equal(registry.cluster, 'c1');
    assert.deepEqual(
      registry.identities.map((i) => i.name),
      names,
    );
    for (const id of registry.identities) {
      const seed = readFileSync(join(out, `${id.name}.nk`), 'utf8').trim();
      assert.equal(fromSeed(new TextEncoder().encode(seed)).getPublicKey(), id.publicKey, id.name);
      assert.equal(id.role, id.name.split('@')[0]);
      assert.equal(id.node, id.name.split('@')[1]);
    }
  });

  it('never prints a secret', () => {
    for (const seed of seedsIn(out)) assert.ok(!first.out.includes(seed) && !first.err.includes(seed));
    for (const key of ['ca-key.pem', 'server-key.pem']) {
      const body = readFileSync(join(out, key), 'utf8').split('\n')[1]!;
      assert.ok(!first.out.includes(body));
    }
  });

  it('writes a configuration nats-server accepts (nats-server -t, each release), verifying clients against the cluster CA', async () => {
    await acceptedByEveryRelease(join(out, 'nats-server.conf'));
    const conf = readFileSync(join(out, 'nats-server.conf'), 'utf8');
    assert.match(conf, new RegExp(`tls \\{[^}]*ca_file: "${join(out, 'ca.pem')}"\\s+verify: true`));
  });

  it('signs the server certificate for the hosts given and loopback, and each streamer certificate by name', async () => {
    const x509 = async (file: string) =>
      (await run('openssl', ['x509', '-in', join(out, file), '-noout', '-subject', '-ext', 'subjectAltName']))
        .stdout;
    const server = await x509('server-cert.pem');
    for (const san of ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:10.0.0.5'])
      assert.ok(server.includes(san), san);
    const streamer = await x509('streamer@node-a-cert.pem');
    assert.match(streamer, /CN = streamer@node-a/);
    assert.match(streamer, /DNS:streamer@node-a/);
    for (const cert of ['server-cert.pem', 'streamer@node-a-cert.pem', 'streamer@node-b-cert.pem']) {
      const v = await run('openssl', ['verify', '-CAfile', join(out, 'ca.pem'), join(out, cert)]);
      assert.match(v.stdout, /OK/);
    }
  });

  it("signs each other identity's client certificate, by its name and for client use only", async () => {
    for (const name of ['coordinator', 'agent@node-a', 'agent@node-b', 'scheduler', 'ops']) {
      const cert = join(out, `${name}-cert.pem`);
      const v = await run('openssl', [
        'verify',
        '-CAfile',
        join(out, 'ca.pem'),
        '-purpose',
        'sslclient',
        cert,
      ]);
      assert.match(v.stdout, /OK/, name);
      const text = (
        await run('openssl', ['x509', '-in', cert, '-noout', '-subject', '-ext', 'extendedKeyUsage'])
      ).stdout;
      assert.match(text, new RegExp(`CN = ${name}\\n`), name);
      assert.match(text, /TLS Web Client Authentication\n/, name);
      assert.doesNotMatch(text, /Server Authentication/, name);
    }
  });

  it('refuses a folder that is not empty (exit 4) and changes nothing in it', async () => {
    const before = seedsIn(out);
    const r = await haul(['init-cluster', '--nodes', 'node-a', '--out', out]);
    assert.equal(r.code, initClusterExit.notEmpty);
    assert.match(r.err, /not empty/);
    assert.deepEqual(seedsIn(out), before);
  });

  it('with --force writes new secrets over the old ones, each with its own mode whatever the old file had', async () => {
    const before = seedsIn(out);
    chmodSync(join(out, 'coordinator.nk'), 0o644);
    const r = await haul(['init-cluster', '--nodes', 'node-a,node-b', '--out', out, '--force']);
    assert.equal(r.code, initClusterExit.ok, r.err);
    assert.equal(modeOf(join(out, 'coordinator.nk')), 0o600);
    for (const seed of seedsIn(out)) assert.ok(!before.includes(seed));
  });

  it('usage errors exit 2: no --out, no node, a node or host that is no name', async () => {
    for (const args of [
      ['--nodes', 'node-a'],
      ['--out', join(parent, 'x')],
      ['--nodes', 'node a', '--out', join(parent, 'x')],
      ['--nodes', 'a.b', '--out', join(parent, 'x')],
      ['--nodes', 'node-a', '--out', join(parent, 'x'), '--host', 'bad host\nx'],
      ['--nodes', 'node-a', '--out', join(parent, 'x'), '--unknown'],
    ]) {
      const r = await haul(['init-cluster', ...args]);
      assert.equal(r.code, initClusterExit.usage, args.join(' '));
    }
    assert.equal((await haul(['init-cluster', '--help'])).code, 0);
  });

  it('an unknown flag names the closest known one, as for every other command', async () => {
    const r = await haul(['init-cluster', '--node', 'node-a', '--out', join(parent, 'x')]);
    assert.equal(r.code, initClusterExit.usage);
    assert.match(r.err, /unknown flag --node \(did you mean --nodes\?\)/);
    assert.match(r.err, /Run 'haul init-cluster --help' for usage/);
  });

  it('exits 5 when openssl cannot be run', async () => {
    const r = await haul(['init-cluster', '--nodes', 'node-a', '--out', join(parent, 'no-openssl')], {
      ...process.env,
      PATH: join(parent, 'empty'),
    });
    assert.equal(r.code, initClusterExit.openssl);
    assert.match(r.err, /openssl not found/);
  });
});

describe('haul init-cluster --auth jwt (NATS operator mode)', () => {
  it('writes one .creds file per identity (0600) and no .nk, the operator and account seeds (0600), operator.jwt', () => {
    assert.equal(jwtRun.code, initClusterExit.ok, jwtRun.err);
    const files = readdirSync(outJwt);
    assert.deepEqual(
      files.filter((f) => f.endsWith('.nk')).sort(),
      ['account.nk', 'operator.nk'],
      'no identity has a seed file beside its .creds',
    );
    for (const f of ['account.nk', 'operator.nk']) assert.equal(modeOf(join(outJwt, f)), 0o600, f);
    assert.equal(modeOf(join(outJwt, 'operator.jwt')), 0o644);
    const registry = JSON.parse(readFileSync(join(outJwt, 'identities.json'), 'utf8')) as IdentitiesFile;
    assert.equal(files.filter((f) => f.endsWith('.creds')).length, registry.identities.length);
    for (const id of registry.identities) {
      const file = join(outJwt, `${id.name}.creds`);
      assert.equal(modeOf(file), 0o600, file);
      const { seed, jwt } = readIdentityFile(file, 'credsFile');
      assert.ok(!jwtRun.out.includes(seed) && !jwtRun.err.includes(seed), 'a seed is never printed');
      assert.equal(fromSeed(new TextEncoder().encode(seed)).getPublicKey(), id.publicKey, id.name);
      // The user JWT names the identity's key and carries exactly its permissions, issued by the haul account.
      const claims = decode<User>(jwt!);
      assert.equal(claims.sub, id.publicKey);
      assert.equal(claims.name, id.name);
      assert.match(claims.iss, /^A/);
      const want = userJwtPermissions(id, id.publicKey);
      assert.deepEqual(claims.nats.pub, want.pub, `${id.name} pub`);
      assert.deepEqual(claims.nats.sub, want.sub, `${id.name} sub`);
      assert.deepEqual(claims.nats.resp, want.resp, `${id.name} resp`);
    }
    assert.match(jwtRun.out, /coordinator\s+U[A-Z0-9]+\s+coordinator\.creds/);
  });

  it('writes an operator-mode configuration nats-server accepts (each release), trusting operator.jwt and preloading two accounts', async () => {
    await acceptedByEveryRelease(join(outJwt, 'nats-server.conf'));
    const conf = readFileSync(join(outJwt, 'nats-server.conf'), 'utf8');
    assert.match(conf, new RegExp(`^operator: "${join(outJwt, 'operator.jwt')}"$`, 'm'));
    assert.match(conf, /^resolver: MEMORY$/m);
    assert.equal([...conf.matchAll(/^ {2}A[A-Z0-9]{55}: "ey/gm)].length, 2);
    assert.doesNotMatch(conf, /authorization \{/);
  });

  it('refuses an --auth it does not know, naming the choices', async () => {
    const r = await haul(['init-cluster', '--nodes', 'a', '--out', join(parent, 'x'), '--auth', 'jtw']);
    assert.equal(r.code, initClusterExit.usage);
    assert.match(r.err, /--auth: "jtw" is not one of nkey, jwt \(did you mean jwt\?\)/);
  });
});

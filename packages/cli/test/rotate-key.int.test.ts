import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { decode, type Account } from '@nats-io/jwt';
import { fromSeed } from '@nats-io/nkeys';
import { parseRegistry, readIdentityFile } from '@haul/bus';
import { createTestSecrets, natsServerBinary, type TestSecrets } from '@haul/test';
import { commands, exitCode, initCluster, main } from '@haul/cli';
import { commandHelp } from '../src/help.ts';
import { createOutput } from '../src/output.ts';
import { revokedUpTo } from '../src/operator-mode.ts';

/**
 * `haul rotate-key` on a secrets folder `haul init-cluster` made: the files it changes and those it leaves alone.
 * With --events-up-to it needs no NATS, and says that N went unchecked (key-rotation.int.test.ts, beside it, reads
 * the sequence from a real server and checks a given N against it).
 */
const run = promisify(execFile);
let secrets: TestSecrets;
const file = (name: string) => join(secrets.dir, name);
const text = (name: string) => readFileSync(file(name), 'utf8');
const modeOf = (name: string) => statSync(file(name)).mode & 0o777;
const registry = () => parseRegistry(JSON.parse(text('identities.json')) as unknown);
const keyOf = (name: string) => registry().identities.find((i) => i.name === name)!;

/** `haul ARGS` in this process, with no NATS anywhere: its exit code, stdout and stderr. */
async function haul(args: string[]) {
  let out = '';
  let err = '';
  const o = createOutput({ write: (s: string) => (out += s) }, {});
  const code = await main(args, {
    out: o,
    err: (s) => (err += `${s}\n`),
    env: { HAUL_NATS_URL: 'nats://127.0.0.1:1' },
  });
  return { code, out, err };
}

before(async () => {
  secrets = await createTestSecrets(['node-a', 'node-b']);
});
after(async () => secrets?.remove());

describe('haul rotate-key', () => {
  it('given a secrets folder, when agent@node-a is rotated, then only its seed, the registry and the server config change', async () => {
    const before = new Map(
      ['identities.json', 'nats-server.conf', 'coordinator.nk', 'agent@node-b.nk', 'ca.pem'].map((f) => [
        f,
        text(f),
      ]),
    );
    const oldSeed = text('agent@node-a.nk');
    const old = keyOf('agent@node-a').publicKey;
    const r = await haul([
      'rotate-key',
      '--dir',
      secrets.dir,
      '--identity',
      'agent@node-a',
      '--events-up-to',
      '42',
    ]);
    assert.equal(r.code, exitCode('completed'), r.err);

    const seed = text('agent@node-a.nk').trim();
    assert.notEqual(seed, oldSeed.trim());
    assert.equal(modeOf('agent@node-a.nk'), 0o600);
    assert.ok(!r.out.includes(seed) && !r.err.includes(seed), 'the seed is never printed');
    const now = keyOf('agent@node-a');
    assert.equal(fromSeed(new TextEncoder().encode(seed)).getPublicKey(), now.publicKey);
    assert.deepEqual(now.retiredKeys, [{ publicKey: old, eventsUpTo: 42 }]);
    assert.match(r.out, new RegExp(`new key ${now.publicKey}`));
    assert.match(r.out, new RegExp(`retired ${old}: believed for events up to sequence 42`));
    assert.match(
      r.err,
      /^haul rotate-key: warning: NATS not reachable \(.*\), so --events-up-to 42 was not checked against the event stream: the retired key vouches for every event stored up to sequence 42;/m,
    );

    const conf = text('nats-server.conf');
    assert.ok(!conf.includes(old), 'the server config no longer names the old key, as a user or an inbox');
    assert.ok(conf.includes(`nkey: "${now.publicKey}"`));
    assert.ok(conf.includes(`_INBOX.${now.publicKey}.>`));
    assert.equal(modeOf('nats-server.conf'), 0o644);
    assert.equal(modeOf('identities.json'), 0o644);
    const changed = (a: string, b: string) => a.split('\n').filter((l, i) => l !== b.split('\n')[i]);
    assert.equal(
      changed(conf, before.get('nats-server.conf')!).length,
      2,
      'its nkey line and its inbox line',
    );
    const { stdout, stderr } = await run(natsServerBinary(), ['-t', '-c', file('nats-server.conf')]);
    assert.match(stdout + stderr, /is valid/);

    for (const f of ['coordinator.nk', 'agent@node-b.nk', 'ca.pem']) assert.equal(text(f), before.get(f), f);
    const others = (r: ReturnType<typeof registry>) => r.identities.filter((i) => i.name !== 'agent@node-a');
    assert.deepEqual(
      others(registry()),
      others(parseRegistry(JSON.parse(before.get('identities.json')!) as unknown)),
    );
  });

  it('given a rotated identity, when it is rotated again, then both old keys are retired, oldest first; --json says so', async () => {
    const second = keyOf('agent@node-a').publicKey;
    const r = await haul([
      'rotate-key',
      '--dir',
      secrets.dir,
      '--identity',
      'agent@node-a',
      '--events-up-to',
      '50',
      '--json',
    ]);
    assert.equal(r.code, 0, r.err);
    const printed = JSON.parse(r.out) as {
      identity: string;
      publicKey: string;
      retired: unknown;
      wrote: string[];
      warning: string;
    };
    assert.equal(printed.identity, 'agent@node-a');
    assert.equal(printed.publicKey, keyOf('agent@node-a').publicKey);
    assert.deepEqual(printed.retired, { publicKey: second, eventsUpTo: 50 });
    assert.deepEqual(printed.wrote, ['agent@node-a.nk', 'identities.json', 'nats-server.conf']);
    assert.match(printed.warning, /--events-up-to 50 was not checked against the event stream/);
    assert.deepEqual(
      keyOf('agent@node-a').retiredKeys?.map((k) => k.eventsUpTo),
      [42, 50],
    );
  });

  it('--help says what it writes and that without --events-up-to it reads the sequence from NATS', async () => {
    const r = await haul(['rotate-key', '--help']);
    assert.equal(r.code, 0);
    assert.equal(r.out, `${commandHelp(commands.find((c) => c.name === 'rotate-key')!)}\n`);
    const flat = r.out.replace(/\s+/g, ' ');
    assert.match(flat, /Usage: haul rotate-key --dir DIR --identity NAME \[flags\]/);
    assert.match(flat, /--events-up-to N/);
    assert.match(flat, /Without --events-up-to, N is the event stream's last sequence, read from NATS/);
    assert.match(flat, /as the identity whose seed HAUL_NKEY_SEED_FILE or HAUL_CREDS_FILE names/);
    assert.match(flat, /In a folder made with --auth jwt it writes DIR\/<identity>\.creds instead/);
    assert.match(
      flat,
      /N may not exceed that last sequence when NATS can be reached; when it cannot .*a warning/,
    );
    assert.match(flat, /mode 0600, never printed/);
  });

  it('given a usage error, then it exits 2 naming the flag, and changes nothing', async () => {
    const registryBefore = text('identities.json');
    const seedBefore = text('agent@node-a.nk');
    const cases: [string[], RegExp][] = [
      [['--dir', secrets.dir], /missing --identity NAME/],
      [['--identity', 'agent@node-a'], /missing --dir DIR/],
      [
        ['--dir', secrets.dir, '--identity', 'agent@node-z', '--events-up-to', '60'],
        /--identity: no identity "agent@node-z" .*\(did you mean agent@node-a\?\)/,
      ],
      [
        ['--dir', secrets.dir, '--identity', 'agent@node-a', '--events-up-to', 'last'],
        /--events-up-to: "last" is not a whole number/,
      ],
      [
        ['--dir', secrets.dir, '--identity', 'agent@node-a', '--events-up-to', '49'],
        /--events-up-to: agent@node-a already has a key retired at event sequence 50/,
      ],
      [
        ['--dir', join(secrets.dir, 'nope'), '--identity', 'agent@node-a', '--events-up-to', '60'],
        /--dir: .* is not a folder/,
      ],
      [
        ['--dir', secrets.dir, '--identiy', 'agent@node-a'],
        /unknown flag --identiy \(did you mean --identity\?\)/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await haul(['rotate-key', ...args]);
      assert.equal(r.code, exitCode('usage'), args.join(' '));
      assert.match(r.err, message, args.join(' '));
      assert.match(r.err, /Run 'haul rotate-key --help' for usage/);
    }
    assert.equal(text('identities.json'), registryBefore);
    assert.equal(text('agent@node-a.nk'), seedBefore);
  });

  it('given a secrets folder whose server dir has a space in it, when an identity is rotated, then the TLS paths are kept', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'haul-rotate-space-'));
    try {
      const dir = join(parent, 'secrets');
      const serverDir = join(parent, 'etc haul', 'secrets "x"');
      await initCluster({ nodes: ['node-a'], out: dir, cluster: 'test', serverDir });
      const before = readFileSync(join(dir, 'nats-server.conf'), 'utf8');
      assert.ok(before.includes(`cert_file: ${JSON.stringify(join(serverDir, 'server-cert.pem'))}`));
      const r = await haul(['rotate-key', '--dir', dir, '--identity', 'ops', '--events-up-to', '7']);
      assert.equal(r.code, exitCode('completed'), r.err);
      const conf = readFileSync(join(dir, 'nats-server.conf'), 'utf8');
      for (const f of ['server-cert.pem', 'server-key.pem', 'ca.pem'])
        assert.ok(conf.includes(JSON.stringify(join(serverDir, f))), f);
      const tls = (c: string) => /^tls \{[^}]*\}/m.exec(c)?.[0];
      assert.equal(tls(conf), tls(before));
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});

describe('haul rotate-key in an operator-mode folder (init-cluster --auth jwt)', () => {
  let jwt: TestSecrets;
  const at = (name: string) => join(jwt.dir, name);
  const read = (name: string) => readFileSync(at(name), 'utf8');
  /** The haul account's revocations, from the account JWT preloaded in nats-server.conf (the one with limits). */
  const revocations = () => {
    const jwts = [...read('nats-server.conf').matchAll(/^ {2}A[A-Z0-9]{55}: "([^"]+)"$/gm)].map((m) => m[1]!);
    const haul = jwts.map((j) => decode<Account>(j)).find((c) => c.name === 'haul');
    assert.ok(haul, 'the haul account is preloaded');
    return haul.nats.revocations ?? {};
  };
  const rotate = (identity: string, upTo: number) =>
    haul(['rotate-key', '--dir', jwt.dir, '--identity', identity, '--events-up-to', String(upTo)]);

  before(async () => {
    jwt = await createTestSecrets(['node-a'], 'jwt');
  });
  after(async () => jwt?.remove());

  it('given two rotations of one identity, then a new .creds each time, both old keys revoked for good, operator mode kept', async () => {
    const keyOfJwt = () =>
      parseRegistry(JSON.parse(read('identities.json')) as unknown).identities.find(
        (i) => i.name === 'agent@node-a',
      )!;
    const first = keyOfJwt().publicKey;
    let r = await rotate('agent@node-a', 5);
    assert.equal(r.code, exitCode('completed'), r.err);
    const second = keyOfJwt().publicKey;
    r = await rotate('agent@node-a', 9);
    assert.equal(r.code, exitCode('completed'), r.err);
    const { seed, jwt: user } = readIdentityFile(at('agent@node-a.creds'), 'credsFile');
    assert.equal(fromSeed(new TextEncoder().encode(seed)).getPublicKey(), keyOfJwt().publicKey);
    assert.equal(decode(user!).sub, keyOfJwt().publicKey);
    assert.equal(statSync(at('agent@node-a.creds')).mode & 0o777, 0o600);
    assert.ok(!existsSync(at('agent@node-a.nk')), 'no seed file beside the .creds');
    assert.deepEqual(revocations(), { [first]: revokedUpTo, [second]: revokedUpTo });
    assert.match(read('nats-server.conf'), /^operator: "/m);
    assert.doesNotMatch(read('nats-server.conf'), /authorization \{/);
    assert.match(r.out, /new key U[A-Z0-9]+ \(in .*agent@node-a\.creds\)/);
  });

  it('given the operator and account seeds kept offline, then it refuses naming them, and changes nothing', async () => {
    const before = ['identities.json', 'nats-server.conf', 'scheduler.creds'].map(read);
    const offline = await mkdtemp(join(tmpdir(), 'haul-offline-'));
    try {
      for (const f of ['operator.nk', 'account.nk']) renameSync(at(f), join(offline, f));
      const r = await rotate('scheduler', 3);
      assert.equal(r.code, exitCode('error'));
      assert.match(r.err, /cannot read .*operator\.nk.*bring both back/);
      assert.deepEqual(['identities.json', 'nats-server.conf', 'scheduler.creds'].map(read), before);
    } finally {
      for (const f of ['operator.nk', 'account.nk']) renameSync(join(offline, f), at(f));
      await rm(offline, { recursive: true, force: true });
    }
  });

  it('given an nkey folder with an account seed left by an earlier --auth jwt, then it rotates nkey users', async () => {
    const r = await haul(['rotate-key', '--dir', secrets.dir, '--identity', 'ops', '--events-up-to', '1']);
    assert.equal(r.code, exitCode('completed'), r.err);
    writeFileSync(file('account.nk'), read('account.nk'), { mode: 0o600 });
    try {
      const again = await haul([
        'rotate-key',
        '--dir',
        secrets.dir,
        '--identity',
        'ops',
        '--events-up-to',
        '2',
      ]);
      assert.equal(again.code, exitCode('completed'), again.err);
      assert.match(text('nats-server.conf'), /authorization \{/);
      assert.doesNotMatch(text('nats-server.conf'), /^operator:/m);
      assert.ok(existsSync(file('ops.nk')) && !existsSync(file('ops.creds')));
    } finally {
      rmSync(file('account.nk'));
    }
  });
});

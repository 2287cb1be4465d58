import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createUser } from '@nats-io/nkeys';
import { identityFileOf, IdentityFileError, readIdentityFile } from './identity-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-identity-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const user = createUser();
const seed = new TextDecoder().decode(user.getSeed());
const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVIn0.c2ln';
/** A .creds file as nsc and `haul init-cluster --auth jwt` (jwt.js fmtCreds) write it. */
const creds = `-----BEGIN NATS USER JWT-----
${jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
${seed}
------END USER NKEY SEED------

*************************************************************
`;
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
};

/** The error reading `path` as `setting` throws: its setting and message, which must never quote the seed. */
function refusal(path: string, setting: 'nkeySeedFile' | 'credsFile'): IdentityFileError {
  try {
    readIdentityFile(path, setting);
  } catch (err) {
    assert.ok(err instanceof IdentityFileError);
    assert.ok(!err.message.includes(seed), 'the message quotes no secret');
    return err;
  }
  assert.fail(`${path} was read as ${setting}`);
}

describe('an identity file', () => {
  it('given an nkey seed file, when read as nkeySeedFile, then it is its seed and no JWT', () => {
    assert.deepEqual(readIdentityFile(file('a.nk', `${seed}\n`), 'nkeySeedFile'), { seed });
  });

  it('given a .creds file, when read as credsFile, then it is its seed and its user JWT', () => {
    assert.deepEqual(readIdentityFile(file('a.creds', creds), 'credsFile'), { seed, jwt });
  });

  it('given a .creds file named as nkeySeedFile, then it is refused, saying to set credsFile', () => {
    const err = refusal(file('b.creds', creds), 'nkeySeedFile');
    assert.equal(err.setting, 'nkeySeedFile');
    assert.match(err.message, /is a \.creds file: set credsFile \(HAUL_CREDS_FILE\)/);
  });

  it('given a seed file named as credsFile, then it is refused: no BEGIN/END blocks', () => {
    const err = refusal(file('b.nk', `${seed}\n`), 'credsFile');
    assert.match(err.message, /is not a NATS \.creds file: holds 0 BEGIN\/END blocks/);
  });

  it('given a .creds file whose second block is an account seed, then it is refused', () => {
    const account = creds.replace(seed, `SA${seed.slice(2)}`);
    assert.match(refusal(file('c.creds', account), 'credsFile').message, /not a user nkey seed/);
  });

  it('given a missing file or one with two words, then the refusal names the file', () => {
    assert.match(refusal(join(dir, 'none.nk'), 'nkeySeedFile').message, /cannot read .*none\.nk/);
    assert.match(
      refusal(file('d.nk', `${seed} ${seed}\n`), 'nkeySeedFile').message,
      /d\.nk does not hold an nkey user seed/,
    );
  });
});

describe("the identity file of a process's settings", () => {
  it('given one of the two settings, then that file and that setting', () => {
    assert.deepEqual(identityFileOf({ nkeySeedFile: '/k.nk' }), { file: '/k.nk', setting: 'nkeySeedFile' });
    assert.deepEqual(identityFileOf({ credsFile: '/k.creds' }), { file: '/k.creds', setting: 'credsFile' });
    assert.equal(identityFileOf({}), undefined);
  });

  it('given both, then neither is chosen: the error names both', () => {
    assert.throws(
      () => identityFileOf({ nkeySeedFile: '/k.nk', credsFile: '/k.creds' }),
      (err: unknown) =>
        err instanceof IdentityFileError &&
        /nkeySeedFile \(HAUL_NKEY_SEED_FILE\) and credsFile \(HAUL_CREDS_FILE\) are both set/.test(
          err.message,
        ),
    );
  });
});

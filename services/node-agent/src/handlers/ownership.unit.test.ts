import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { HostResult, StepCommand } from '@haul/schemas';
import { readCtDisks } from '../adapters/vz-config.ts';
import type { HandlerContext } from '../context.ts';
import { releaseOwnership } from './ownership.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-ownership-'));
after(() => rmSync(root, { recursive: true, force: true }));

const mid = 'm-0123456789abcdef01234567';
const body = 'VE_PRIVATE="/vz/private/$VEID"\nOSTEMPLATE="centos-7"\n';

/**
 * A source host where CT 101 is registered (/etc/vz/conf/101.conf links to its ve.conf), and a context whose
 * `vzctl unregister` removes the link as libvzctl does, then dies when told to (the agent killed mid-step).
 */
function registered(name: string) {
  const hostRoot = join(root, name);
  const priv = join(hostRoot, 'vz', 'private', '101');
  const conf = join(hostRoot, 'etc', 'vz', 'conf');
  mkdirSync(priv, { recursive: true });
  mkdirSync(conf, { recursive: true });
  writeFileSync(join(priv, 've.conf'), body.replace('/vz/private', join(hostRoot, 'vz', 'private')));
  symlinkSync(join(priv, 've.conf'), join(conf, '101.conf'));
  const calls: string[] = [];
  let dieAfterUnlink = false;
  const ctx = {
    cfg: { node: 'node-a', hostRoot },
    tools: {
      vzctlUnregister: (ctid: string) => {
        calls.push(ctid);
        unlinkSync(join(conf, `${ctid}.conf`));
        if (dieAfterUnlink) throw new Error('killed');
        return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
      },
    },
  } as unknown as HandlerContext;
  const cmd = {
    commandId: `${mid}:releaseOwnership:-:1`,
    migrationId: mid,
    node: 'node-a',
    executor: 'agent',
    attempt: 1,
    step: 'releaseOwnership',
    args: { ctid: '101' },
    timeoutMs: 120_000,
  } as unknown as StepCommand;
  return {
    etcVz: join(hostRoot, 'etc', 'vz'),
    own: join(conf, '101.conf'),
    priv,
    calls,
    ctx,
    cmd,
    crashNext: () => (dieAfterUnlink = true),
    healed: () => (dieAfterUnlink = false),
  };
}

describe('releaseOwnership: the source lets go of the CT and keeps an unregistered config', () => {
  it('unregisters once and leaves a plain file with the same body where the link was', async () => {
    const h = registered('plain');
    const r = (await releaseOwnership(h.cmd, h.ctx)) as HostResult;
    assert.deepEqual(r.actions, ['unregistered', 'an unregistered config kept']);
    assert.equal(lstatSync(h.own).isSymbolicLink(), false);
    assert.equal(readCtDisks(h.etcVz, '101')?.vePrivate, h.priv);
    assert.equal(existsSync(`${h.own}.haul-unregistered`), false);
    assert.deepEqual(((await releaseOwnership(h.cmd, h.ctx)) as HostResult).actions, ['not registered here']);
    assert.deepEqual(h.calls, ['101'], 'vzctl unregister ran once');
  });

  it('killed right after vzctl unregister removed the link: the repeat restores the config, so the private area is still known', async () => {
    const h = registered('crash');
    h.crashNext();
    await assert.rejects(releaseOwnership(h.cmd, h.ctx), /killed/);
    assert.equal(existsSync(h.own), false, 'the crash left no config in /etc/vz/conf');
    h.healed();
    const r = (await releaseOwnership(h.cmd, h.ctx)) as HostResult;
    assert.deepEqual(r.actions, ['an unregistered config kept']);
    assert.equal(readFileSync(h.own, 'utf8'), readFileSync(join(h.priv, 've.conf'), 'utf8'));
    assert.equal(readCtDisks(h.etcVz, '101')?.vePrivate, h.priv, 'removeFiles:source-disks can be confined');
    assert.deepEqual(h.calls, ['101'], 'vzctl unregister is not run again on an unregistered CT');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { abortableTaking } from '../src/given-up.ts';

describe('abortableTaking: a promise of something to close, given up', () => {
  it('destroys what arrives after the give-up, and rejects with its reason', async () => {
    let arrive!: (s: { destroyed: boolean; destroy(): void }) => void;
    const accepted = new Promise<{ destroyed: boolean; destroy(): void }>((r) => (arrive = r));
    const ac = new AbortController();
    const taken = abortableTaking(accepted, ac.signal);
    ac.abort(new Error('given up'));
    const sock = { destroyed: false, destroy: () => void (sock.destroyed = true) };
    arrive(sock);
    await assert.rejects(taken, /given up/);
    await accepted;
    assert.equal(sock.destroyed, true);
  });

  it('hands over what arrives before the give-up, untouched', async () => {
    const sock = { destroyed: false, destroy: () => void (sock.destroyed = true) };
    const ac = new AbortController();
    assert.equal(await abortableTaking(Promise.resolve(sock), ac.signal), sock);
    ac.abort();
    assert.equal(sock.destroyed, false);
  });
});

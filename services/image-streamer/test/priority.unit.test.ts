import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPriorityGate, createSlots } from '../src/priority.ts';

describe('transfer priority and slots', () => {
  it('iteration transfers wait their turn while a final transfer runs; final ones never wait', async () => {
    const gate = createPriorityGate();
    const order: string[] = [];
    const leave = gate.enter('final');
    const iteration = gate.turn('iteration').then(() => order.push('iteration chunk'));
    await gate.turn('final').then(() => order.push('final chunk'));
    await Promise.resolve();
    assert.deepEqual(order, ['final chunk'], 'the iteration chunk waits');
    leave();
    await iteration;
    assert.deepEqual(order, ['final chunk', 'iteration chunk']);
    assert.equal(gate.finalsRunning, 0);
  });

  it('two final transfers: iterations wait until both ended; leaving twice counts once', async () => {
    const gate = createPriorityGate();
    const l1 = gate.enter('final');
    const l2 = gate.enter('final');
    let ran = false;
    const it = gate.turn('iteration').then(() => (ran = true));
    l1();
    l1();
    await Promise.resolve();
    assert.equal(ran, false);
    l2();
    await it;
    assert.equal(ran, true);
  });

  it('an iteration transfer given up while it waits leaves the gate at once', async () => {
    const gate = createPriorityGate();
    const leave = gate.enter('final');
    assert.equal(gate.blocks('iteration'), true);
    assert.equal(gate.blocks('final'), false);
    const ac = new AbortController();
    const waiting = gate.turn('iteration', ac.signal);
    ac.abort(new Error('given up'));
    await assert.rejects(waiting, /given up/);
    leave();
    assert.equal(gate.blocks('iteration'), false);
  });

  it('slots: a waiter given up leaves the queue and takes no slot', async () => {
    const slots = createSlots(1);
    const a = await slots.acquire();
    assert.equal(slots.full, true);
    const ac = new AbortController();
    const gone = slots.acquire(ac.signal);
    let third = false;
    const c = slots.acquire().then((r) => {
      third = true;
      return r;
    });
    ac.abort(new Error('given up'));
    await assert.rejects(gone, /given up/);
    a();
    (await c)();
    assert.equal(third, true);
    assert.equal(slots.full, false, 'the given-up waiter holds nothing');
  });

  it('slots: at most n hold one at a time, the next waiter gets a released slot', async () => {
    const slots = createSlots(2);
    const a = await slots.acquire();
    const b = await slots.acquire();
    let third = false;
    const c = slots.acquire().then((r) => {
      third = true;
      return r;
    });
    await Promise.resolve();
    assert.equal(third, false);
    a();
    a();
    (await c)();
    b();
    const d = await slots.acquire();
    const e = await slots.acquire();
    d();
    e();
  });
});

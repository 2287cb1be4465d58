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

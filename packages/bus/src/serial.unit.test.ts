import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSerialByKey } from './serial.ts';

/** A piece of work that ends when the test says so, and says when it started. */
function gate() {
  let open!: () => void;
  let fail!: (e: Error) => void;
  const ended = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { open, fail, ended };
}

describe('serial by key: one key at a time, keys side by side', () => {
  it("given a key's piece running, when another of the same key is handed over, then it starts only after it", async () => {
    // Given a piece of key m1 running
    const serial = createSerialByKey();
    const seen: string[] = [];
    const first = gate();
    const a = serial.run('m1', async () => {
      seen.push('a start');
      await first.ended;
      seen.push('a end');
    });
    // When a second piece of m1 is handed over
    const b = serial.run('m1', () => {
      seen.push('b start');
      return Promise.resolve();
    });
    await Promise.resolve();
    assert.deepEqual(seen, ['a start']);
    first.open();
    await Promise.all([a, b]);

    // Then it ran after the first ended
    assert.deepEqual(seen, ['a start', 'a end', 'b start']);
  });

  it("given a key's piece running, when a piece of another key is handed over, then it runs at once", async () => {
    const serial = createSerialByKey();
    const held = gate();
    const a = serial.run('m1', () => held.ended);
    let ran = false;
    await serial.run('m2', () => {
      ran = true;
      return Promise.resolve();
    });
    assert.ok(ran);
    await new Promise(setImmediate); // the done key is dropped once its piece has settled
    assert.ok(serial.busy('m1'));
    assert.ok(!serial.busy('m2'));
    held.open();
    await a;
  });

  it('a piece that fails gives its caller the failure and does not stop the next one of its key', async () => {
    const serial = createSerialByKey();
    const failing = gate();
    const a = serial.run('m1', () => failing.ended);
    const b = serial.run('m1', () => Promise.resolve(42));
    failing.fail(new Error('boom'));
    await assert.rejects(a, /boom/);
    assert.equal(await b, 42);
  });

  it('idle settles once every key is done, pieces handed over meanwhile included; a done key costs nothing', async () => {
    const serial = createSerialByKey();
    const first = gate();
    const later = gate();
    const order: string[] = [];
    void serial.run('m1', async () => {
      await first.ended;
      order.push('m1');
      // handed over while idle() waits
      void serial.run('m2', async () => {
        await later.ended;
        order.push('m2');
      });
      later.open();
    });
    const idle = serial.idle().then(() => order.push('idle'));
    first.open();
    await idle;
    assert.deepEqual(order, ['m1', 'm2', 'idle']);
    assert.equal(serial.size, 0);
  });
});

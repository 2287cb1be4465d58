import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { headers } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus } from '@haul/bus';
import { startNatsServer, type NatsServer } from '@haul/test';
import { headerBlockOf, headersOf } from '../src/raw-headers.ts';

let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'raw-headers-test' });
});
after(async () => {
  await nc?.drain();
  await server?.stop();
});

/** Every name a test asks for: present once, twice, with spaces, in another case, absent. */
const names = [
  'Haul-Signer',
  'Haul-Signature',
  'Nats-Msg-Id',
  'Twice',
  'Spaced',
  'haul-signer',
  'Absent',
  'Haul',
];

describe('a message’s headers read from its own bytes (headersOf)', () => {
  it('given messages stored by a real server, then each header is what nats.js decodes, read without decoding them all', async () => {
    // Given a stream with messages whose headers vary, and one without headers
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'RAWH', subjects: ['rawh.>'] });
    const js = jetstream(nc);
    const variants: Record<string, string[]>[] = [
      { 'Haul-Signer': ['UABC'], 'Haul-Signature': ['c2ln'], Twice: ['first', 'second'] },
      { 'Haul-Signer': ['UXYZ'], Spaced: ['  padded value  '], Haul: ['a prefix of another name'] },
      { 'Haul-Signature': ['only a signature'], 'Haul-Signer': ['ünïcödé'] },
    ];
    for (const [i, v] of variants.entries()) {
      const h = headers();
      for (const [k, vals] of Object.entries(v)) for (const x of vals) h.append(k, x);
      await js.publish(`rawh.${i}`, new TextEncoder().encode(`{"i":${i}}`), { headers: h, msgID: `m-${i}` });
    }
    await js.publish('rawh.bare', new TextEncoder().encode('{}'));

    // When they are read through a consumer, as the replay reads
    await jsm.consumers.add('RAWH', {
      durable_name: 'rawh',
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    });
    const got: JsMsg[] = [];
    const iter = await (await js.consumers.get('RAWH', 'rawh')).consume({ max_messages: 10 });
    for await (const m of iter) {
      got.push(m);
      if (got.length === 4) break;
    }
    await iter.close();

    // Then the pinned nats.js keeps the bytes where headersOf looks, and every answer equals its own decode
    for (const m of got.slice(0, 3)) {
      assert.ok(headerBlockOf(m) instanceof Buffer, `${m.subject}: the header bytes were found`);
      const raw = headersOf(m)!;
      for (const n of [...names, ...names.toReversed(), 'Haul-Signer', 'Haul-Signer'])
        assert.equal(raw.get(n), m.headers!.get(n), `${m.subject} ${n}`);
    }
    assert.equal(headersOf(got[0]!)!.get('Twice'), 'first');
    assert.equal(headersOf(got[1]!)!.get('Spaced'), 'padded value');
    assert.equal(headersOf(got[1]!)!.get('Haul-Signature'), '');
    assert.equal(headersOf(got[2]!)!.get('Haul-Signer'), 'ünïcödé');
    // A message without headers has none, as with nats.js
    assert.equal(headerBlockOf(got[3]!), undefined);
    assert.equal(headersOf(got[3]!), undefined);
    assert.equal(got[3]!.headers, undefined);
  });

  it('given a message whose bytes are not where nats.js 3.4 keeps them, then nats.js’s own headers answer', () => {
    const decoded = { get: (n: string) => (n === 'Haul-Signer' ? 'UABC' : '') };
    const other = { headers: decoded, msg: { data: new Uint8Array(0) } } as unknown as JsMsg;
    assert.equal(headerBlockOf(other), null);
    assert.equal(headersOf(other), decoded);
  });
});

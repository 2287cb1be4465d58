import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrateRequest, NodeHeartbeat } from '@haul/schemas';
import { encodeJson, limits } from '@haul/bus';
import { parseLedger, type AdmissionEntry } from './admission-ledger.ts';
import {
  decideAdmission,
  decideConfirmation,
  migrationIdFor,
  type AdmissionInput,
  type NodeReport,
} from './admission.ts';

const now = new Date('2030-01-01T12:00:00.000Z');
const beat = (node: string, ageMs = 0): NodeReport => ({
  ok: true,
  heartbeat: {
    node,
    service: 'node-agent',
    time: new Date(now.getTime() - ageMs).toISOString(),
    criuVersion: '3.17',
    memTrack: true,
    cpuFlags: [],
    freeBytes: 1e9,
    imageRoot: `/img/${node}`,
  } satisfies NodeHeartbeat,
});
const entry = (ctid: string, source: string, target: string, requestId = `r-${ctid}`): AdmissionEntry => ({
  migrationId: migrationIdFor(requestId),
  requestId,
  ctid,
  source,
  target,
  imageRoots: { source: `/img/${source}`, target: `/img/${target}` },
  admittedAt: '2030-01-01T11:59:00.000Z',
});
const input = (request: MigrateRequest, nodes: Partial<AdmissionInput['nodes']> = {}): AdmissionInput => ({
  request,
  migrationId: migrationIdFor(request.requestId),
  nodes: { source: beat(request.source), target: beat(request.target), ...nodes },
  maxPerNode: 1,
  now,
});
const req = (requestId: string, ctid: string, source = 'node-a', target = 'node-b'): MigrateRequest => ({
  requestId,
  ctid,
  source,
  target,
});
const codeOf = (d: ReturnType<typeof decideAdmission>) => (d.ok ? 'admitted' : d.error.code);

describe('migration ids from request ids', () => {
  it('are a pure function of the request id, distinct for ids a sanitiser would merge, and subject-safe', () => {
    assert.equal(migrationIdFor('a.b:1'), migrationIdFor('a.b:1'));
    const ids = ['a.b:1', 'a_b_1', 'a.b_1', 'a_b:1', 'A.b:1'].map(migrationIdFor);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^m-[0-9a-f]{24}$/);
  });
});

describe('given one active migration of CT 101 between node-a and node-b (limit 1 per node)', () => {
  const active = [entry('101', 'node-a', 'node-b')];

  it('another request for CT 101 is refused as CT busy, though both nodes are at their limit too', () => {
    const d = decideAdmission(active, input(req('other', '101')));
    assert.equal(codeOf(d), 'HAUL_CT_BUSY');
    assert.equal(!d.ok && d.error.field, 'ctid');
  });

  it('CT busy comes before a node that is down or unknown as well', () => {
    const d = decideAdmission(active, input(req('other', '101'), { source: { ok: false, reason: 'none' } }));
    assert.equal(codeOf(d), 'HAUL_CT_BUSY');
  });

  it('another CT on the same nodes is refused as node busy, naming the source first', () => {
    const d = decideAdmission(active, input(req('r-102', '102')));
    assert.equal(codeOf(d), 'HAUL_NODE_BUSY');
    assert.equal(!d.ok && d.error.field, 'source');
  });

  it('a node that is unknown or stale comes before node busy (source before target)', () => {
    const unknown = decideAdmission(
      active,
      input(req('r-102', '102'), { target: { ok: false, reason: 'no node agent has reported' } }),
    );
    assert.equal(codeOf(unknown), 'HAUL_NODE_UNKNOWN');
    assert.equal(!unknown.ok && unknown.error.field, 'target');
    const stale = decideAdmission(active, input(req('r-102', '102'), { source: beat('node-a', 60_000) }));
    assert.equal(codeOf(stale), 'HAUL_NODE_DOWN');
    assert.equal(!stale.ok && stale.error.field, 'source');
  });

  it('the same request again finds its own admission (refreshed), whatever the nodes say now', () => {
    const d = decideAdmission(active, input(req('r-101', '101'), { source: { ok: false, reason: 'gone' } }));
    assert.ok(d.ok);
    assert.equal(d.entries.length, 1);
    assert.equal(d.entry.admittedAt, now.toISOString());
    assert.deepEqual(d.entry.imageRoots, active[0]!.imageRoots);
  });

  it('a request on other nodes is admitted, with its image roots, as one more entry', () => {
    const d = decideAdmission(active, input(req('r-103', '103', 'node-c', 'node-d')));
    assert.ok(d.ok);
    assert.deepEqual(
      d.entries.map((e) => e.ctid),
      ['101', '103'],
    );
    assert.deepEqual(d.entry.imageRoots, { source: '/img/node-c', target: '/img/node-d' });
  });
});

describe('a request id whose migration id is taken by another request id', () => {
  it('is refused as a collision, never answered as the other request', () => {
    const other = { ...entry('101', 'node-a', 'node-b'), requestId: 'someone-else' };
    const d = decideAdmission([other], { ...input(req('r-101', '101')), migrationId: other.migrationId });
    assert.equal(codeOf(d), 'HAUL_REQUEST_ID_COLLISION');
  });
});

describe('a request id admitted for another request, whose MigrationRequested is not in the log yet', () => {
  it('is refused for another CT or other nodes, naming the first field that differs, and changes nothing', () => {
    const first = entry('101', 'node-a', 'node-b', 'reused');
    for (const [again, field] of [
      [req('reused', '202'), 'ctid'],
      [req('reused', '101', 'node-c'), 'source'],
      [req('reused', '101', 'node-a', 'node-d'), 'target'],
    ] as const) {
      const d = decideAdmission([first], input(again));
      assert.equal(codeOf(d), 'HAUL_REQUEST_ID_REUSED');
      assert.equal(!d.ok && d.error.field, field);
      assert.match(!d.ok ? d.error.message : '', /admitted for CT 101 from node-a to node-b/);
    }
  });
});

describe('a migration in the log, before its first step (limit 1 per node)', () => {
  const at = (ageMs: number) => new Date(now.getTime() - ageMs).toISOString();
  const confirm = (entries: AdmissionEntry[], wanted: AdmissionEntry) =>
    decideConfirmation(entries, wanted, { maxPerNode: 1, now });
  const mine = entry('101', 'node-a', 'node-b', 'r-mine');

  it('goes on, with nothing written, while its entry is young enough that no reaper can have judged it stale', () => {
    const young = { ...mine, admittedAt: at(limits.admissionGraceMs / 2 - 1) };
    assert.deepEqual(confirm([young], mine), { ok: true });
  });

  it('goes on with its entry refreshed once a reaper may have judged it stale before the append landed', () => {
    const old = { ...mine, admittedAt: at(limits.admissionGraceMs / 2) };
    const other = entry('102', 'node-c', 'node-d');
    assert.deepEqual(confirm([other, old], mine), {
      ok: true,
      entries: [other, { ...mine, admittedAt: now.toISOString() }],
    });
  });

  it('whose entry was reaped, is admitted again when its CT and nodes are free', () => {
    const other = entry('102', 'node-c', 'node-d');
    assert.deepEqual(confirm([other], mine), {
      ok: true,
      entries: [other, { ...mine, admittedAt: now.toISOString() }],
    });
  });

  it('whose entry was reaped, is refused when its CT was admitted again meanwhile, naming that migration', () => {
    const again = entry('101', 'node-c', 'node-d', 'r-again');
    const d = confirm([again], mine);
    assert.ok(!d.ok && d.error.code === 'HAUL_CT_BUSY' && d.error.message.includes(again.migrationId));
  });

  it('whose entry was reaped, is refused when a node reached its limit meanwhile (source first)', () => {
    const d = confirm([entry('102', 'node-b', 'node-a')], mine);
    assert.ok(!d.ok && d.error.code === 'HAUL_NODE_BUSY' && d.error.field === 'source', JSON.stringify(d));
  });
});

describe('the stored ledger', () => {
  it('reads back what was written, and names what is wrong with anything else', () => {
    const entries = [entry('101', 'node-a', 'node-b')];
    assert.deepEqual(parseLedger(encodeJson({ entries })), { ok: true, entries });
    assert.deepEqual(parseLedger(new TextEncoder().encode('junk')), { ok: false, reason: 'not JSON' });
    assert.deepEqual(parseLedger(encodeJson([1])), { ok: false, reason: 'no entries list' });
    const broken = { entries: [entries[0], { ...entries[0], admittedAt: 'yesterday' }] };
    assert.deepEqual(parseLedger(encodeJson(broken)), {
      ok: false,
      reason: 'entries.1 is not an admission entry',
    });
  });
});

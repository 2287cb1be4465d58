import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { maxFrozenLeaseMs } from '@haul/bus';
import type { MigrationEvent, StepCommand } from '@haul/schemas';
import { confineCommand, pathFields, resolveOnHost, type ConfineInput } from './confinement.ts';
import { handlers } from './handlers/index.ts';

const top = mkdtempSync(join(tmpdir(), 'haul-confine-'));
after(() => rmSync(top, { recursive: true, force: true }));

const mid = 'm-confine-0001';
const images = join(top, 'images');
const folder = join(images, `haul-${mid}`);
const shared = join(top, 'shared');
const priv = join(top, 'private', '101');
const outside = join(top, 'outside');
for (const d of [join(folder, '1'), join(shared, 'ct101'), join(priv, 'root.hdd'), outside])
  mkdirSync(d, { recursive: true });
writeFileSync(join(outside, 'precious'), 'x');
symlinkSync(outside, join(images, 'out'));
symlinkSync(outside, join(folder, 'out'));
symlinkSync(outside, join(shared, 'out'));
symlinkSync(join(top, 'nowhere'), join(folder, 'dangling'));

const input = (events: MigrationEvent[] = []): ConfineInput => ({
  bounds: { imageRoot: images, sharedRoots: [shared], maxLeaseMs: 120_000 },
  events,
  privateArea: (ctid) => (ctid === '101' ? priv : undefined),
});
const command = (step: StepCommand['step'], args: Record<string, unknown>): StepCommand =>
  ({
    commandId: `${mid}:${step}:-:1`,
    migrationId: mid,
    node: 'node-a',
    executor: 'agent',
    attempt: 1,
    step,
    timeoutMs: 30_000,
    args,
  }) as unknown as StepCommand;
const refusedField = (cmd: StepCommand, i = input()) => {
  const r = confineCommand(cmd, i);
  return r.ok ? undefined : [r.error.code, r.error.field];
};

describe('resolveOnHost', () => {
  it('resolves symlinks of the existing part and keeps the rest', () => {
    assert.deepEqual(resolveOnHost(join(images, 'out', 'new', 'x')), {
      ok: true,
      path: join(outside, 'new', 'x'),
    });
  });
  it('refuses . and .. segments and relative paths', () => {
    for (const p of [`${folder}/../x`, `${folder}/./1`, 'relative/x'])
      assert.equal(resolveOnHost(p).ok, false, p);
  });
  it('refuses a dangling symlink (a write would create its target)', () => {
    assert.equal(resolveOnHost(join(folder, 'dangling', 'x')).ok, false);
  });
  it('does not follow the last component when asked not to', () => {
    assert.deepEqual(resolveOnHost(join(folder, 'out'), false), { ok: true, path: join(folder, 'out') });
  });
});

describe('confineCommand', () => {
  it('accepts the paths the core sends and hands them on resolved', () => {
    const pre = command('preflightSource', {
      ctid: '101',
      mode: 'live',
      sharedDisks: [join(shared, 'ct101', 'DiskDescriptor.xml')],
      imageDir: folder,
    });
    assert.equal(confineCommand(pre, input()).ok, true);
    const dump = command('preDump', {
      ctid: '101',
      iteration: 1,
      imageDir: join(folder, '2'),
      prevImageDir: '../1',
      workDir: join(folder, 'work'),
    });
    assert.equal(confineCommand(dump, input()).ok, true);
  });

  it("refuses an image folder of another migration, or the image root's other folders", () => {
    const cmd = command('preflightTarget', {
      ctid: '101',
      mode: 'live',
      sharedDisks: [],
      imageDir: join(images, 'haul-m-other-00001'),
    });
    assert.deepEqual(refusedField(cmd), ['HAUL_PATH_OUTSIDE_ROOTS', 'args.imageDir']);
  });

  it('refuses a prevImageDir that is a symlink out of the folder', () => {
    const cmd = command('preDump', {
      ctid: '101',
      iteration: 1,
      imageDir: join(folder, '2'),
      prevImageDir: '../out',
      workDir: join(folder, 'work'),
    });
    assert.deepEqual(refusedField(cmd), ['HAUL_PATH_OUTSIDE_ROOTS', 'args.prevImageDir']);
    const linked = { ...cmd, args: { ...(cmd.args as object), prevImageDir: '../9' } } as StepCommand;
    symlinkSync(outside, join(folder, '9'));
    assert.deepEqual(refusedField(linked), ['HAUL_PATH_OUTSIDE_ROOTS', 'args.prevImageDir']);
  });

  it('names the item of an array field', () => {
    const cmd = command('removeFiles', { paths: [folder, join(images, 'out', 'x')] });
    assert.deepEqual(refusedField(cmd), ['HAUL_PATH_OUTSIDE_ROOTS', 'args.paths.1']);
  });

  it('removes a symlinked image folder as the link itself', () => {
    rmSync(folder, { recursive: true });
    symlinkSync(outside, folder);
    try {
      const r = confineCommand(command('removeFiles', { paths: [folder] }), input());
      assert.ok(r.ok);
      assert.deepEqual((r.command.args as { paths: string[] }).paths, [folder]);
    } finally {
      rmSync(folder);
      mkdirSync(join(folder, '1'), { recursive: true });
    }
  });

  it("removes a local disk folder only when the migration's log intends this very command", () => {
    const cmd = command('removeFiles', { paths: [join(priv, 'root.hdd')] });
    const requested = {
      type: 'MigrationRequested',
      migrationId: mid,
      data: { request: { ctid: '101' } },
    } as unknown as MigrationEvent;
    const intent = { type: 'StepIntended', migrationId: mid, data: cmd } as unknown as MigrationEvent;
    assert.deepEqual(refusedField(cmd, input([requested])), ['HAUL_PATH_OUTSIDE_ROOTS', 'args.paths.0']);
    assert.equal(refusedField(cmd, input([requested, intent])), undefined);
    const other = { ...cmd, args: { paths: [priv] } } as StepCommand;
    assert.deepEqual(refusedField(other, input([requested, { ...intent, data: other } as MigrationEvent])), [
      'HAUL_PATH_OUTSIDE_ROOTS',
      'args.paths.0',
    ]);
  });

  it("refuses a lease longer than the node's cap", () => {
    const cmd = command('finalDump', {
      ctid: '101',
      iteration: 1,
      imageDir: join(folder, '2'),
      workDir: join(folder, 'work'),
      leaseMs: 900_000,
    });
    assert.deepEqual(refusedField(cmd), ['HAUL_LEASE_TOO_LONG', 'args.leaseMs']);
  });
});

describe('the inventory of path fields', () => {
  type Schema = { $defs: Record<string, { properties?: Record<string, Record<string, unknown>> }> };
  type Variant = { properties: { step: { const: string }; args: { $ref: string } } };
  const read = (f: string) => JSON.parse(readFileSync(join(import.meta.dirname, f), 'utf8')) as unknown;
  const steps = read('../../../schemas/json/steps.schema.json') as Schema;
  const variants = (read('../../../schemas/json/command.schema.json') as { oneOf: Variant[] }).oneOf;
  const isPath = (p: Record<string, unknown>): boolean =>
    (typeof p['$ref'] === 'string' && p['$ref'].endsWith('/AbsolutePath')) ||
    (p['type'] === 'array' && isPath(p['items'] as Record<string, unknown>)) ||
    (typeof p['description'] === 'string' && /relative to/i.test(p['description']));

  it('names every path field of every step the agent runs, by the schemas', () => {
    for (const step of Object.keys(handlers)) {
      const v = variants.find((x) => x.properties.step.const === step)!;
      const def = steps.$defs[v.properties.args.$ref.split('/').pop()!]!;
      const fromSchema = Object.entries(def.properties ?? {})
        .filter(([, p]) => isPath(p))
        .map(([k]) => k)
        .sort();
      const inventory = Object.keys(pathFields[step as StepCommand['step']] ?? {}).sort();
      assert.deepEqual(inventory, fromSchema, step);
    }
  });

  it("caps leases at the schema's bound by default (one fact: conventions.ts)", () => {
    const lease = steps.$defs['DumpArgs']!.properties!['leaseMs']!;
    assert.equal(lease['maximum'], maxFrozenLeaseMs);
  });
});

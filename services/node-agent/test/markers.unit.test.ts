import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createCommandMarkers } from '../src/markers.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-markers-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('command markers', () => {
  const markers = createCommandMarkers(join(dir, 'commands'));

  it('name a marker by a fixed-length digest, whatever the command id (no ENAMETOOLONG)', () => {
    const long = `m-${'x'.repeat(1000)}:preDump:0:1`;
    assert.equal(markers.begin(long), false);
    assert.match(basename(markers.pathOf(long)), /^[0-9a-f]{64}$/);
    assert.equal(markers.begin(long), true, 'found again: in doubt');
    markers.end(long);
    assert.equal(markers.begin(long), false, 'gone once the outcome is recorded');
    markers.end(long);
  });

  it('never give two command ids one marker (no character is folded into another)', () => {
    const ids = ['a.b:1', 'a_b_1', 'a_b:1', 'a.b_1', 'a/b:1', 'a\nb:1'];
    assert.equal(new Set(ids.map((id) => markers.pathOf(id))).size, ids.length);
    for (const id of ids) assert.equal(markers.begin(id), false, `${JSON.stringify(id)} starts unmarked`);
    assert.equal(readdirSync(join(dir, 'commands')).length, ids.length);
    for (const id of ids) markers.end(id);
  });

  it('keep the command id inside the marker, for whoever reads the folder', () => {
    markers.begin('mig-1:restore:-:1');
    const body = JSON.parse(readFileSync(markers.pathOf('mig-1:restore:-:1'), 'utf8')) as {
      commandId: string;
    };
    assert.equal(body.commandId, 'mig-1:restore:-:1');
    markers.end('mig-1:restore:-:1');
  });

  it('list the commands in doubt with the ack subject of their delivery; a marker cut short by a crash is skipped', () => {
    const own = createCommandMarkers(join(dir, 'in-doubt'));
    own.begin('mig-2:snapshotOrigin:1:1', '$JS.ACK.HAUL_COMMANDS.agent-node-a.1.7.7.1764950400000000000.0');
    own.begin('mig-2:backupDescriptor:1:1');
    own.begin('mig-2:lockSource:-:1', '$JS.ACK.HAUL_COMMANDS.agent-node-a.1.3.3.1764950300000000000.0');
    own.end('mig-2:lockSource:-:1');
    writeFileSync(join(dir, 'in-doubt', 'f'.repeat(64)), '{"commandId": "mig-2:sna');
    assert.deepEqual(
      own
        .inDoubt()
        .map(({ commandId, reply }) => ({ commandId, reply }))
        .sort((a, b) => a.commandId.localeCompare(b.commandId)),
      [
        { commandId: 'mig-2:backupDescriptor:1:1', reply: undefined },
        {
          commandId: 'mig-2:snapshotOrigin:1:1',
          reply: '$JS.ACK.HAUL_COMMANDS.agent-node-a.1.7.7.1764950400000000000.0',
        },
      ],
    );
  });
});

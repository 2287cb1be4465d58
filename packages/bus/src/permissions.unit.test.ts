import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { renderPermissionTables } from './permission-table.ts';
import { userJwtPermissions } from './server-config.ts';
import { clusterIdentities, identityName, permissionsFor } from './permissions.ts';

const securityDoc = join(fileURLToPath(import.meta.url), '..', '..', '..', '..', 'docs', 'security.md');
const begin = '<!-- permissions:begin (rendered from packages/bus/src/permissions.ts; a test checks) -->';
const end = '<!-- permissions:end -->';

/** A Markdown table as Prettier may lay it out (padded cells, longer rules) compared by its cells only. */
const cells = (md: string): string =>
  md
    .trim()
    .split('\n')
    .map((l) =>
      l.startsWith('|')
        ? l
            .split(/(?<!\\)\|/)
            .map((c) => c.trim().replace(/^-+$/, '---'))
            .join('|')
        : l.trim(),
    )
    .join('\n');

describe('the permission table', () => {
  it('docs/security.md shows the table the code renders', () => {
    const doc = readFileSync(securityDoc, 'utf8');
    const from = doc.indexOf(begin);
    const to = doc.indexOf(end);
    assert.ok(from >= 0 && to > from, `docs/security.md has the markers ${begin} … ${end}`);
    const shown = doc.slice(from + begin.length, to);
    assert.equal(
      cells(shown),
      cells(renderPermissionTables()),
      'docs/security.md is stale: paste renderPermissionTables()',
    );
  });

  it('names one identity per role, and per node for agents and streamers', () => {
    assert.deepEqual(
      clusterIdentities(['a', 'b']).map((i) => i.name),
      ['coordinator', 'agent@a', 'streamer@a', 'agent@b', 'streamer@b', 'scheduler', 'ops'],
    );
    assert.throws(() => identityName('agent'));
    assert.throws(() => identityName('agent', 'a.b'));
  });

  it('grants every identity only its own inbox, and lets no one delete a stream, consumer or message', () => {
    for (const id of clusterIdentities(['a'])) {
      const p = permissionsFor(id, 'UKEY');
      const inboxes = p.subscribe.allow.filter((g) => g.subject.startsWith('_INBOX'));
      assert.deepEqual(
        inboxes.map((g) => g.subject),
        ['_INBOX.UKEY.>'],
      );
      for (const d of ['STREAM.DELETE', 'STREAM.PURGE', 'STREAM.MSG.DELETE', 'CONSUMER.DELETE'])
        assert.ok(
          p.publish.deny.some((g) => g.subject === `$JS.API.${d}.>`),
          `${id.name}: ${d}`,
        );
    }
  });
});

describe('the permissions of a user JWT (operator mode)', () => {
  it('given each identity, then its JWT grants and denies the same subjects as its nkey user, and answers requests as allowed', () => {
    for (const id of clusterIdentities(['node-a', 'node-b'])) {
      const p = permissionsFor(id, 'UKEY');
      const j = userJwtPermissions(id, 'UKEY');
      const subjectsOf = (grants: { subject: string }[]) => grants.map((g) => g.subject);
      assert.deepEqual(j.pub, { allow: subjectsOf(p.publish.allow), deny: subjectsOf(p.publish.deny) });
      assert.deepEqual(j.sub, { allow: subjectsOf(p.subscribe.allow), deny: subjectsOf(p.subscribe.deny) });
      // An empty allow list in a JWT would grant everything.
      assert.ok(j.pub.allow.length > 0 && j.sub.allow.length > 0, id.name);
      assert.deepEqual(j.resp, p.allowResponses ? { max: 0, ttl: 0 } : undefined, id.name);
    }
  });
});

import { permissionsFor, roles, type Grant, type Role } from './permissions.ts';

const node = 'NODE';
const key = 'KEY';
/** A subject as the docs show it: the node and the inbox's public key as placeholders. */
const shown = (s: string): string =>
  `\`${s.replace(/\bNODE\b/g, '<node>').replace(/\bKEY\b/g, '<public key>')}\``;
const row = (what: string, g: Grant): string =>
  `| ${what} | ${shown(g.subject)} | ${g.why.replace(/\|/g, '\\|')} |`;

/** One role's permissions as a Markdown table (docs/security.md, "Identities and permissions"). */
function roleTable(role: Role): string[] {
  const p = permissionsFor({ name: role, role, node }, key);
  return [
    `#### ${role === 'agent' || role === 'streamer' ? `${role}@<node>` : role}`,
    '',
    '| may | subject | for |',
    '| --- | --- | --- |',
    ...p.publish.allow.map((g) => row('publish', g)),
    ...p.subscribe.allow.map((g) => row('subscribe', g)),
    ...p.publish.deny.map((g) => row('never publish', g)),
    ...p.subscribe.deny.map((g) => row('never subscribe', g)),
    `| answer requests | (allow_responses) | ${p.allowResponses ? 'yes: one reply to each request it received' : 'no'} |`,
    '',
  ];
}

/** Every role's table, rendered from permissions.ts: docs/security.md holds this text verbatim (a test checks). */
export function renderPermissionTables(): string {
  return roles.flatMap(roleTable).join('\n');
}

import type { MigrationStatus, StatusReply } from '@haul/schemas';
import type { createApiClient } from './client.ts';

type Api = ReturnType<typeof createApiClient>;

/** What a stuck migration waits on, and what an operator may do about it. */
export function stuckLine(s: MigrationStatus): string {
  const st = s.stuck;
  if (!st) return '';
  const err = st.lastError ? `  last error ${st.lastError.code}: ${st.lastError.message}` : '';
  const what = st.resolvable
    ? `haul retry ${s.migrationId} | haul resolve ${s.migrationId} --action ${st.action}`
    : `haul retry ${s.migrationId}`;
  return `stuck on ${st.action} (${st.plan}, ${st.attempts} attempts since ${st.since})${err}\n  then: ${what}`;
}

/** `haul retry ID` / `haul resolve ID --action KEY`: exit 0 when accepted, 2 when refused (with the code). */
export async function operatorAction(
  api: Api,
  cmd: 'retry' | 'resolve',
  id: string | undefined,
  opts: { action?: string | undefined; reason?: string | undefined; json: boolean },
): Promise<number> {
  if (!id) throw new Error(`${cmd} needs a migration id`);
  let r: StatusReply;
  if (cmd === 'retry') r = await api.retry(id, opts.reason);
  else {
    if (!opts.action)
      throw new Error('resolve needs --action KEY (the stuck action, as haul status shows it)');
    r = await api.resolve(id, opts.action, opts.reason);
  }
  if (!r.ok) {
    const field = r.error.field ? ` (field ${r.error.field})` : '';
    console.error(`haul: ${cmd} refused: ${r.error.code}${field}: ${r.error.message}`);
    return 2;
  }
  console.log(opts.json ? JSON.stringify(r.status) : `${id}: ${r.status?.phase ?? 'accepted'}`);
  return 0;
}

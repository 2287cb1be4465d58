import assert from 'node:assert/strict';
import { it } from 'node:test';
import { subjects } from '@haul/bus';
import { CommandRejectedError, type DecideInput } from '@haul/domain';
import { createValidators } from '@haul/schemas';
import type { Msg } from '@nats-io/transport-node';
import { operatorRoutes } from './operator-api.ts';
import type { ProcessManager } from './process-manager.ts';

it("a resolve request's targetIdle reaches the core, and only when the operator said it", async () => {
  // Given the operator API over a process manager that records each input it is asked to decide (and refuses it)
  const inputs: DecideInput[] = [];
  const pm = {
    meta: () => ({}),
    step: (_mid: string, input: () => DecideInput) => {
      inputs.push(input());
      return Promise.reject(new CommandRejectedError('HAUL_FENCED', 'recorded', 'targetIdle'));
    },
  } as unknown as ProcessManager;
  const routes = operatorRoutes(createValidators(), pm, () => ({ ok: true, name: 'ops' }));
  const resolve = routes.find(([subject]) => subject === subjects.apiResolve)![1];
  const mid = 'm-0123456789abcdef01234567';

  // When a resolve of stopTarget is asked with targetIdle, then without it
  await resolve({ migrationId: mid, action: 'stopTarget:-', targetIdle: true }, {} as Msg);
  await resolve({ migrationId: mid, action: 'stopTarget:-' }, {} as Msg);

  // Then the core is asked with it the first time only
  assert.deepEqual(
    inputs.map((i) => i.kind === 'Resolve' && i.targetIdle),
    [true, undefined],
  );
});

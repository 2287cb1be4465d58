import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * How long a step spent inside host tools, so its result can say what part of the step was host work (toolMs) and
 * the core can tell the rest — the control overhead — apart. A measurement follows the step's async calls wherever
 * the tools are run from (the runner, the held dump), without passing a clock through every function.
 */
type Measurement = { clock: { ms: number }; inTool: boolean };

const current = new AsyncLocalStorage<Measurement>();

/** Run a step and return its value with the wall time of the host tools it ran, summed. */
export async function measureToolTime<T>(fn: () => Promise<T>): Promise<{ value: T; toolMs: number }> {
  const clock = { ms: 0 };
  const value = await current.run({ clock, inTool: false }, fn);
  return { value, toolMs: Math.round(clock.ms * 10) / 10 };
}

/**
 * Count `fn`'s wall time as host-tool time of the step being measured (nothing outside a measurement). A tool run
 * inside another one (the held dump's wait around criu) is counted once.
 */
export async function asToolTime<T>(fn: () => Promise<T>): Promise<T> {
  const m = current.getStore();
  if (!m || m.inTool) return fn();
  const t0 = performance.now();
  try {
    return await current.run({ clock: m.clock, inTool: true }, fn);
  } finally {
    m.clock.ms += performance.now() - t0;
  }
}

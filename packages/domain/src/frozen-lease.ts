/**
 * The frozen lease of a final dump: how long the source holds the CT frozen without a decision before it resumes it.
 * A fixed lease aborts a large final transfer that is still progressing; so the lease grows with the predicted
 * final transfer, on top of a floor that covers the fixed work of the window (the shared-disk snapshots, the
 * restore), and stops at a cap.
 */

/** The predicted transfer time is multiplied by this: the rate was measured while the CT ran, maybe on a quieter link. */
export const frozenLeaseSafetyFactor = 4;
/** The longest lease a finalDump command may carry: the `leaseMs` maximum of schemas/json/steps.schema.json. */
export const frozenLeaseCapMs = 15 * 60_000;

export type FrozenLeaseInput = {
  /** The configured lease (HAUL_FROZEN_LEASE_MS): what the window needs besides the transfer. */
  floorMs: number;
  /** Bytes the final images are predicted to hold (the last pre-dump's). */
  predictedBytes?: number;
  /** The link's measured rate, bytes per second (the last transfer's, or the request's bandwidth limit). */
  bytesPerSec?: number;
};

/** floor + safety × bytes ÷ rate, at most the cap; the floor alone when the size or the rate is not known yet. */
export function frozenLeaseMs(i: FrozenLeaseInput): number {
  const floor = Math.min(i.floorMs, frozenLeaseCapMs);
  if (!i.predictedBytes || !i.bytesPerSec || i.bytesPerSec <= 0) return floor;
  const transferMs = (i.predictedBytes / i.bytesPerSec) * 1000;
  return Math.min(frozenLeaseCapMs, Math.ceil(floor + frozenLeaseSafetyFactor * transferMs));
}

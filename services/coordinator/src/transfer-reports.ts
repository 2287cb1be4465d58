import type { NatsConnection } from '@nats-io/transport-node';
import { openProgress, readProgress } from '@haul/bus';
import { inFlight, stepTable, type MigrationState, type TransferReports } from '@haul/domain';
import type { TransferProgress, Validators } from '@haul/schemas';

/**
 * The stall rule's evidence: the latest report of each transfer a migration has in flight, read from the progress
 * bucket just before a Tick decides (one get per transfer, only when a deadline came). Nothing is watched: a
 * transfer's report is rewritten every second, and the coordinator needs it only once a stall time, so a read at
 * the deadline is both fresher and cheaper than following every report, and it holds after a restart. The last
 * reports read are kept per migration so that its timer is armed for the deadline they give.
 */
export function createTransferReports(nc: NatsConnection, validators: Validators) {
  const known = new Map<string, TransferReports>();
  return {
    /** Read the reports of the migration's transfers in flight (none in flight: nothing is read). */
    async refresh(mid: string, state: MigrationState): Promise<TransferReports> {
      const transfers = inFlight(state).filter((r) => stepTable[r.step].executor === 'streamer');
      if (transfers.length === 0) {
        known.delete(mid);
        return {};
      }
      const kv = await openProgress(nc);
      const out: Record<string, TransferProgress> = {};
      for (const r of transfers) {
        const report = await readProgress(kv, validators, mid, r.command.node, r.command.commandId);
        if (report) out[r.command.commandId] = report;
      }
      known.set(mid, out);
      return out;
    },
    /** The reports read last for this migration (a deadline from them is early at worst, never late). */
    of(mid: string): TransferReports {
      return known.get(mid) ?? {};
    },
    forget(mid: string): void {
      known.delete(mid);
    },
  };
}

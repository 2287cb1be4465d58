import type { ErrorInfo, MigrateRequest, PreflightResult } from '@haul/schemas';
import { checkDisks } from './disks.ts';

/** Compare dotted versions numerically ("3.17" > "3.9.2"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** P.Haul's checks before anything changes: config on both sides, CT state, CRIU versions, CPU flags, disks. */
export function checkPreflight(
  req: MigrateRequest,
  src: PreflightResult,
  tgt: PreflightResult,
): ErrorInfo | undefined {
  const live = (req.mode ?? 'live') === 'live';
  if (!src.configPresent)
    return {
      code: 'HAUL_PREFLIGHT_NO_CONFIG',
      message: `CT ${req.ctid} has no config on the source ${req.source}`,
      field: 'ctid',
    };
  if (!tgt.configPresent)
    return {
      code: 'HAUL_PREFLIGHT_NO_CONFIG',
      message: `CT config missing on destination ${req.target}`,
      field: 'target',
    };
  if (live && !src.running)
    return {
      code: 'HAUL_PREFLIGHT_NOT_RUNNING',
      message: `CT ${req.ctid} is not running on ${req.source}`,
      field: 'ctid',
    };
  if (tgt.running)
    return {
      code: 'HAUL_PREFLIGHT_TARGET_RUNNING',
      message: `CT ${req.ctid} is already running on ${req.target}`,
      field: 'target',
    };
  if (live && compareVersions(tgt.criuVersion, src.criuVersion) < 0) {
    return {
      code: 'HAUL_PREFLIGHT_CRIU_VERSION',
      message: `criu on the target (${tgt.criuVersion}) is older than on the source (${src.criuVersion})`,
      field: 'target',
    };
  }
  if (live && !req.skipCpuCheck) {
    const missing = src.cpuFlags.filter((f) => !tgt.cpuFlags.includes(f));
    if (missing.length > 0)
      return {
        code: 'HAUL_PREFLIGHT_CPU',
        message: `the target lacks CPU flags ${missing.join(' ')}`,
        field: 'target',
      };
  }
  return checkDisks(req, src, tgt);
}

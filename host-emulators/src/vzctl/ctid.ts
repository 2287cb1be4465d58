import { ToolExit } from '../lib/emu-env.ts';
import { VZ_INVALID_PARAMETER_VALUE } from './options.ts';

/**
 * A ctid as vzctl takes it (src/vzctl.c 1811–1829 at 42ab7b3 → libvzctl vzctl2_parse_ctid → get_cid_uuid_pair,
 * lib/env.c 1831–1870 at ebbfc38): first a UUID, then a number strtol reads whole, from 0 to INT_MAX (lib/common.c
 * parse_int 387–401), which it goes on with as printed by "%d" ("0101" is CT 101). Anything else is refused with
 * VZ_INVALID_PARAMETER_VALUE (21). CT names (NAME=) are not emulated: a name is refused as a real host refuses one
 * nobody registered.
 */
export function parseCtid(given: string): string {
  const ctid = ctidOf(given);
  if (ctid === undefined)
    throw new ToolExit(VZ_INVALID_PARAMETER_VALUE, `Invalid ctid is specified: ${given}`);
  return ctid;
}

/** The ctid `given` names (as parseCtid reads it), or undefined when it names none. */
export function ctidOf(given: string): string | undefined {
  const uuid = normalizedUuid(given);
  if (uuid) return uuid;
  const m = /^\s*\+?([0-9]+)$/.exec(given);
  return m && Number(m[1]) <= 2 ** 31 - 1 ? String(Number(m[1])) : undefined;
}

/**
 * vzctl2_get_normalized_uuid (libvzctl lib/util.c get_normalized_uuid 1778–1853, ebbfc38): the dashed form, bare or
 * in braces (the closing one may be left out, or be the only one), or 32 hex digits with neither dashes nor braces;
 * given back dashed and without braces, each digit in its own case. So 32 decimal digits are a UUID, not a number.
 */
export function normalizedUuid(given: string): string | undefined {
  const dashed = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i.exec(
    given,
  );
  const bare = /^([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12})$/i.exec(given);
  return (dashed ?? bare)?.slice(1).join('-');
}

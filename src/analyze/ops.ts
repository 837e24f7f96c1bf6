// rank-R/ops.json, the profiler's per-operator averages as patches/moe_run/export.py writes them:
// { schema, torch_version, trace_format, device_time_field, ops: [{ name, calls, cpu_self_us,
//   cpu_total_us, device_self_us, device_total_us, …memory… }] }.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { OpRow } from './summary.js';

interface OpsJsonRow {
  name: string;
  calls: number;
  cpu_self_us: number;
  cpu_total_us: number;
  device_self_us: number;
  device_total_us: number;
}

export const TOP_OPS = 15;

/** The heaviest ops by CPU total and by device total; empty lists when the rank wrote no ops.json. */
export async function topOps(path: string): Promise<{ cpu: OpRow[]; device: OpRow[] }> {
  if (!existsSync(path)) return { cpu: [], device: [] };
  const doc = JSON.parse(await readFile(path, 'utf8')) as { ops?: OpsJsonRow[] };
  const rows: OpRow[] = (doc.ops ?? []).map((o) => ({
    name: o.name,
    calls: o.calls,
    cpu_self_s: o.cpu_self_us / 1e6,
    cpu_total_s: o.cpu_total_us / 1e6,
    device_self_s: o.device_self_us / 1e6,
    device_total_s: o.device_total_us / 1e6,
  }));
  const top = (key: keyof OpRow) =>
    [...rows].sort((a, b) => (b[key] as number) - (a[key] as number)).slice(0, TOP_OPS).filter((r) => (r[key] as number) > 0);
  return { cpu: top('cpu_total_s'), device: top('device_total_s') };
}

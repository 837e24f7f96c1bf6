// What the launcher and the samplers recorded, as timeline events:
//   - samples/nvidia-smi.csv → counter tracks ("C") on each GPU's process (utilisation, memory used,
//     power, SM clock, and any other numeric field the sampler asked for);
//   - samples/process.csv → CPU % and RSS counters on each rank's CPU process;
//   - manifest.events (spawn, barrier release, exit, failure…) → instants ("i") on the "moe-run" process.
// All these times are epoch ns on the reference clock (recv_ns, t_ns); the timeline's zero is
// subtracted exactly. The CSVs are read line by line: a long run's samples are never held whole.
import { existsSync } from 'node:fs';
import type { LauncherEvent } from '../run-dir.js';
import { readCsvRecords, sampleNumber } from '../sample/csv.js';
import { writeWithTs } from './remap.js';
import { fromNs, type UsNs } from './time.js';
import type { TimelineWriter } from './writer.js';

/** The fixed pid of the "moe-run" process (launcher events). */
export const MOE_RUN_PID = 1;
const CAT = 'moe-run';

/** nvidia-smi --query-gpu field → counter track name and unit (the unit is the series' name). */
const GPU_FIELDS: Record<string, [string, string]> = {
  'utilization.gpu': ['GPU utilization', '%'],
  'utilization.memory': ['GPU memory bandwidth utilization', '%'],
  'memory.used': ['GPU memory used', 'MiB'],
  'power.draw': ['GPU power', 'W'],
  'power.draw.instant': ['GPU power (instant)', 'W'],
  'clocks.sm': ['SM clock', 'MHz'],
  'clocks.current.sm': ['SM clock', 'MHz'],
  'clocks.mem': ['memory clock', 'MHz'],
  'temperature.gpu': ['GPU temperature', '°C'],
};
/** columns that are not measurements */
const GPU_SKIP = new Set(['recv_ns', 'host', 'timestamp', 'timestamp_ns', 'index', 'name', 'uuid', 'pci.bus_id', 'driver_version', 'serial', 'memory.total', 'pstate']);

function timelineTs(epochNs: string | undefined, zeroNs: bigint) {
  if (!epochNs || !/^\d+$/.test(epochNs)) return null;
  return fromNs(BigInt(epochNs) - zeroNs);
}

export interface CounterStats {
  samples: number;
  skipped: number;
}

/**
 * The loop both samples files share: each row with a usable recv_ns goes to `write` with its timeline
 * ts; a row without one, or that `write` turns down (returns false), counts as skipped.
 */
async function writeRows(
  w: TimelineWriter,
  csv: string,
  zeroNs: bigint,
  write: (row: Record<string, string>, ts: UsNs) => boolean,
): Promise<CounterStats> {
  const stats: CounterStats = { samples: 0, skipped: 0 };
  if (!existsSync(csv)) return stats;
  for await (const row of readCsvRecords(csv)) {
    const ts = timelineTs(row.recv_ns, zeroNs);
    if (!ts || !write(row, ts)) {
      stats.skipped++;
      continue;
    }
    stats.samples++;
    await w.drain();
  }
  return stats;
}

/**
 * nvidia-smi samples as counters. `gpuPid(host, index)` names the process that owns the GPU (a rank's
 * GPU process, or one made for a GPU no rank used).
 */
export async function writeGpuCounters(
  w: TimelineWriter,
  csv: string,
  zeroNs: bigint,
  gpuPid: (host: string, index: number) => number,
): Promise<CounterStats> {
  return writeRows(w, csv, zeroNs, (row, ts) => {
    const index = sampleNumber(row.index);
    if (index === null) return false;
    const pid = gpuPid(row.host ?? '', index);
    for (const [field, cell] of Object.entries(row)) {
      // identities, constants and bit masks (clocks_event_reasons.*) are not tracks
      if (GPU_SKIP.has(field) || field.startsWith('clocks_event_reasons') || field.startsWith('clocks_throttle_reasons')) continue;
      const value = sampleNumber(cell);
      if (value === null) continue;
      const [name, unit] = GPU_FIELDS[field] ?? [field, 'value'];
      writeWithTs(w, { ph: 'C', cat: CAT, name, pid, tid: 0, args: { [unit]: value } }, ts);
    }
    return true;
  });
}

/** process.csv (`recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs`) as counters on each rank's CPU process. */
export async function writeProcessCounters(
  w: TimelineWriter,
  csv: string,
  zeroNs: bigint,
  cpuPid: (rank: number) => number | null,
): Promise<CounterStats> {
  return writeRows(w, csv, zeroNs, (row, ts) => {
    const rank = sampleNumber(row.rank);
    const pid = rank === null ? null : cpuPid(rank);
    if (pid === null) return false;
    const cpu = sampleNumber(row.cpu_percent);
    const rss = sampleNumber(row.rss_bytes);
    const nprocs = sampleNumber(row.nprocs);
    if (cpu !== null) writeWithTs(w, { ph: 'C', cat: CAT, name: 'CPU', pid, tid: 0, args: { '%': cpu } }, ts);
    if (rss !== null) writeWithTs(w, { ph: 'C', cat: CAT, name: 'RSS', pid, tid: 0, args: { MiB: Math.round((rss / 2 ** 20) * 10) / 10 } }, ts);
    if (nprocs !== null) writeWithTs(w, { ph: 'C', cat: CAT, name: 'processes', pid, tid: 0, args: { count: nprocs } }, ts);
    return true;
  });
}

/** Events that concern the whole run are global instants; the rest belong to the moe-run process. */
const GLOBAL_KINDS = new Set<LauncherEvent['kind']>(['barrier-release', 'barrier-timeout', 'failure', 'signal']);

/** manifest.events as instants on the "moe-run" process, plus that process's name and sort index. */
export function writeLauncherEvents(w: TimelineWriter, events: LauncherEvent[], zeroNs: bigint): number {
  w.event({ ph: 'M', cat: CAT, name: 'process_name', pid: MOE_RUN_PID, tid: 0, args: { name: 'moe-run' } });
  w.event({ ph: 'M', cat: CAT, name: 'process_sort_index', pid: MOE_RUN_PID, tid: 0, args: { sort_index: 0 } });
  w.event({ ph: 'M', cat: CAT, name: 'thread_name', pid: MOE_RUN_PID, tid: 0, args: { name: 'launcher' } });
  let n = 0;
  for (const e of events) {
    const ts = timelineTs(e.t_ns, zeroNs);
    if (!ts) continue;
    // "spawn rank 0", "exit rank 1", "barrier-release start" (which barrier is in the detail)
    const who = e.rank !== undefined ? ` rank ${e.rank}` : e.node !== undefined ? ` node ${e.node}` : e.kind.startsWith('barrier') && e.detail ? ` ${e.detail}` : '';
    const args: Record<string, unknown> = {};
    if (e.rank !== undefined) args.rank = e.rank;
    if (e.node !== undefined) args.node = e.node;
    if (e.detail !== undefined) args.detail = e.detail;
    writeWithTs(w, { ph: 'i', cat: CAT, name: `${e.kind}${who}`, s: GLOBAL_KINDS.has(e.kind) ? 'g' : 'p', pid: MOE_RUN_PID, tid: 0, args }, ts);
    n++;
  }
  return n;
}

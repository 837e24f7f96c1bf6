// The report's tables, built once from the summary and rendered by both report.md and report.html,
// so the two always show the same numbers.
import { count, duration, num, percent } from '../analyze/format.js';
import type { OpRow, Summary } from '../analyze/summary.js';

export interface Table {
  id: string;
  title: string;
  /** one sentence under the title: what the numbers are */
  caption?: string;
  headers: string[];
  rows: string[][];
}

const opt = <T>(v: T | undefined, f: (x: T) => string) => (v === undefined || v === null ? '–' : f(v));
const mib = (n: number) => `${count(n)} MiB`;

function ranks(s: Summary): Table {
  return {
    id: 'ranks',
    title: 'Ranks',
    caption: 'Region: the profiled region\'s wall time from the trace. GPU busy: union of kernels, copies and memsets over the region.',
    headers: ['Rank', 'Host', 'Device', 'Status', 'Region', 'Tokens/s', 'Perplexity', 'GPU busy', 'CPU op time', 'Syncs', 'Kernel launches'],
    rows: s.ranks.map((r) => [
      String(r.rank),
      r.host,
      r.device,
      r.reason ? `${r.status} (${r.reason})` : r.status,
      r.events ? duration(r.region_s) : '–',
      opt(r.tokens_per_s, num),
      opt(r.perplexity, num),
      r.gpus.length ? r.gpus.map((g) => `${percent(g.busy_pct)} (GPU ${g.device})`).join(', ') : '–',
      r.events ? duration(r.cpu.op_time_s) : '–',
      r.syncs.headline ? `${count(r.syncs.count)} (${r.syncs.headline})` : '0',
      count(r.launches.count),
    ]),
  };
}

function stages(s: Summary): Table | null {
  const names = [...new Set(s.ranks.flatMap((r) => Object.keys(r.stages)))];
  if (!names.length) return null;
  return {
    id: 'stages',
    title: 'Stage timings (rank.json)',
    headers: ['Rank', ...names],
    rows: s.ranks.map((r) => [String(r.rank), ...names.map((n) => opt(r.stages[n], duration))]),
  };
}

function collectives(s: Summary): Table {
  return {
    id: 'collectives',
    title: 'Collectives per rank',
    caption: 'Share: of the GPU\'s activity time (sum of kernel, copy and memset durations) for NCCL kernels; of the region\'s wall time for CPU-side collectives.',
    headers: ['Rank', 'Collective', 'Side', 'Calls', 'Time', 'Share', 'Events'],
    rows: s.ranks.flatMap((r) =>
      r.collectives.map((c) => [
        String(r.rank), c.label, c.side, count(c.count), duration(c.time_s),
        `${percent(c.share_pct)} of ${c.share_of === 'gpu-activity' ? 'GPU time' : 'region'}`, c.names.join(', '),
      ])),
  };
}

function skew(s: Summary): Table {
  return {
    id: 'skew',
    title: 'Collective arrival skew across ranks',
    caption: `The k-th call of each kind on every rank, matched by order; arrival = start of the call (${s.clock.method}).`,
    headers: ['Collective', 'Matched calls', 'Skew mean', 'p50', 'p95', 'max', 'Waiting (all ranks)', 'Arrived last', 'Straggler'],
    rows: s.collectives.map((c) => [
      c.label,
      `${count(c.matched_calls)}${Object.values(c.calls_per_rank).some((n) => n !== c.matched_calls) ? ` (calls per rank: ${Object.entries(c.calls_per_rank).map(([r, n]) => `${r}: ${n}`).join(', ')})` : ''}`,
      duration(c.skew_ms.mean / 1e3), duration(c.skew_ms.p50 / 1e3), duration(c.skew_ms.p95 / 1e3), duration(c.skew_ms.max / 1e3),
      duration(c.wait_total_s),
      Object.entries(c.last_arrivals).map(([r, n]) => `rank ${r}: ${n}`).join(', '),
      c.straggler ? `rank ${c.straggler.rank}, ${percent(c.straggler.share_pct)} of calls, ${duration(c.straggler.mean_behind_ms / 1e3)} behind` : '–',
    ]),
  };
}

function syncs(s: Summary): Table {
  return {
    id: 'syncs',
    title: 'CPU–GPU sync points',
    caption: s.ranks.some((r) => r.gpus.length > 0)
      ? 'aten::item calls aten::_local_scalar_dense, which copies to the host and waits: the kinds nest, read them side by side.'
      : 'No GPU activity in this run: these calls would wait for the GPU on one; here they wait for nothing.',
    headers: ['Rank', 'Kind', 'Count', 'Time'],
    rows: s.ranks.flatMap((r) => r.syncs.kinds.map((k) => [String(r.rank), k.name, count(k.count), duration(k.time_s)])),
  };
}

function launches(s: Summary): Table {
  return {
    id: 'launches',
    title: 'Kernel launches',
    headers: ['Rank', 'API', 'Count', 'CPU time'],
    rows: s.ranks.flatMap((r) => r.launches.by_api.map((k) => [String(r.rank), k.name, count(k.count), duration(k.time_s)])),
  };
}

function modules(s: Summary): Table {
  return {
    id: 'modules',
    title: 'Tagged modules',
    caption: 'record_function ranges the hooks put around each module\'s forward (inclusive time).',
    headers: ['Rank', 'Module', 'Calls', 'CPU time', 'GPU time', 'Per call'],
    rows: s.ranks.flatMap((r) =>
      r.modules.map((m) => [
        String(r.rank), m.name, count(m.count), duration(m.cpu_time_s), opt(m.gpu_time_s, duration),
        duration((m.gpu_time_s ?? m.cpu_time_s) / m.count),
      ])),
  };
}

function gpuCounters(s: Summary): Table {
  return {
    id: 'gpu-counters',
    title: 'GPU counters (nvidia-smi)',
    headers: ['Host', 'GPU', 'Rank', 'Samples', 'Util mean', 'Util p95', 'Peak memory', 'Memory total', 'Power mean'],
    rows: s.gpu_counters.map((g) => [
      g.host, String(g.index), opt(g.rank, String), count(g.samples), opt(g.util_mean_pct, percent), opt(g.util_p95_pct, percent),
      opt(g.mem_peak_mib, mib), opt(g.mem_total_mib, mib), opt(g.power_mean_w, (w) => `${num(w)} W`),
    ]),
  };
}

function processCounters(s: Summary): Table {
  return {
    id: 'process-counters',
    title: 'Rank processes (CPU and memory samples)',
    headers: ['Rank', 'Samples', 'CPU mean', 'CPU p95', 'Peak RSS'],
    rows: s.process_counters.map((p) => [
      String(p.rank), count(p.samples), opt(p.cpu_mean_pct, percent), opt(p.cpu_p95_pct, percent),
      opt(p.rss_peak_bytes, (b) => mib(b / 2 ** 20)),
    ]),
  };
}

const opRow = (o: OpRow) => [o.name, count(o.calls), duration(o.cpu_self_s), duration(o.cpu_total_s), duration(o.device_self_s), duration(o.device_total_s)];
const OP_HEADERS = ['Operator', 'Calls', 'CPU self', 'CPU total', 'Device self', 'Device total'];

/** Top operators of one rank (ops.json), by CPU total and by device total. */
export function topOps(s: Summary): Table[] {
  return s.ranks.flatMap((r) => [
    ...(r.top_ops_cpu.length ? [{ id: `ops-cpu-${r.rank}`, title: `Rank ${r.rank}: top operators by CPU total`, headers: OP_HEADERS, rows: r.top_ops_cpu.map(opRow) }] : []),
    ...(r.top_ops_device.length ? [{ id: `ops-dev-${r.rank}`, title: `Rank ${r.rank}: top operators by device total`, headers: OP_HEADERS, rows: r.top_ops_device.map(opRow) }] : []),
  ]);
}

/** The main tables in report order; empty tables are left out. */
export function mainTables(s: Summary): Table[] {
  return [ranks(s), stages(s), collectives(s), skew(s), syncs(s), launches(s), modules(s), gpuCounters(s), processCounters(s)]
    .filter((t): t is Table => t !== null && t.rows.length > 0);
}

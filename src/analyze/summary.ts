// summary.json: what the analysis found, machine-readable. The report renders only this, and sweeps
// compare runs by it, so every number a reader sees is here once.
//
// Units are in the field names: `_s` seconds, `_ms` milliseconds, `_pct` percent (0–100),
// `_mib` MiB, `_w` watts, `_bytes` bytes. Absolute times are epoch ns as decimal strings, as in the
// manifest. Durations are of the profiled region, i.e. what the rank's trace covers: from the
// `moe_run/start` marker (or, without one, the trace's first event) to the end of its last event.

export const SUMMARY_SCHEMA_VERSION = 1;

export interface Summary {
  schema: number;
  run: RunInfo;
  /** how rank times were put on one clock for the cross-rank analysis */
  clock: { aligned: boolean; method: string };
  ranks: RankSummary[];
  /** cross-rank view of each collective kind (needs ≥ 2 ranks with that kind) */
  collectives: CollectiveSkew[];
  /** nvidia-smi counters over the region, one entry per GPU sampled */
  gpu_counters: GpuCounters[];
  /** per-rank process samples (CPU %, RSS) over the region */
  process_counters: ProcessCounters[];
  /** plain sentences, each with numbers computed from the fields above */
  findings: string[];
  /** what the analysis could not do and why (missing trace, no samples …) */
  notes: string[];
}

export interface RunInfo {
  name: string;
  run_id: string;
  dir: string;
  created: string;
  status: string;
  /** the run's failure, as the manifest gives it */
  failure?: string;
  world_size: number;
  nnodes: number;
  /** the resolved config, for sweep tables */
  config: unknown;
  /** epoch ns (reference clock) of the start barrier's release: t = 0 of the time series */
  t0_ns?: string;
}

export interface RankSummary {
  rank: number;
  host: string;
  /** "cuda:D" or "cpu" */
  device: string;
  /** from the manifest: ok / failed / stopped … */
  status: string;
  reason?: string;
  trace_file: string | null;
  trace_format: string | null;
  /** complete (duration) events read from the trace */
  events: number;
  /** profiled region wall time, from the trace */
  region_s: number;
  /** where the region's start came from: the moe_run/start marker, or the trace's first event */
  region_source: 'marker' | 'trace-span' | 'none';
  /** stage timings from rank.json (seconds) */
  stages: Record<string, number>;
  steps?: number;
  tokens?: number;
  tokens_per_s?: number;
  loss?: number;
  perplexity?: number;
  gpus: GpuActivity[];
  cpu: CpuActivity;
  /** this rank's collectives by kind (GPU kernels when there are any, CPU-side ops otherwise) */
  collectives: CollectiveStat[];
  syncs: SyncStats;
  launches: LaunchStats;
  /** the tagged module ranges (record_function labels from the config's hooks) */
  modules: ModuleStat[];
  /** from ops.json: the heaviest operators by CPU total and by device (CUDA) total */
  top_ops_cpu: OpRow[];
  top_ops_device: OpRow[];
}

/**
 * One GPU's activity in the region. Busy = the union of its kernel, memcpy and memset intervals
 * (all streams): the GPU is doing the job's work during copies too, as in HTA's temporal breakdown.
 * The breakdown is exclusive and adds up to the region: communication (NCCL kernels) first, then
 * compute (other kernels) where no communication ran, then memory (memcpy/memset) where neither ran.
 */
export interface GpuActivity {
  device: number;
  busy_s: number;
  busy_pct: number;
  idle_s: number;
  kernels: number;
  /** sum of all activity durations (overlapping streams counted twice), the profiler's "Self CUDA total" */
  activity_time_s: number;
  kernel_time_s: number;
  memcpy_time_s: number;
  memset_time_s: number;
  breakdown: { communication_s: number; compute_s: number; memory_s: number; idle_s: number };
}

/**
 * CPU side. op_time_s is the per-thread union of operator intervals (cpu_op, CUDA runtime calls;
 * legacy traces: every op), summed over threads, like the profiler's "Self CPU total". The
 * breakdown looks at any thread: collectives, other operators, and no operator running.
 */
export interface CpuActivity {
  op_time_s: number;
  threads: number;
  breakdown: { collectives_s: number; other_ops_s: number; idle_s: number };
}

export interface CollectiveStat {
  /** normalised kind: all_to_all, all_reduce, all_gather, reduce_scatter, broadcast … */
  kind: string;
  /** for people: "all-to-all (NCCL SendRecv)", "gloo all-to-all" */
  label: string;
  /** gpu: NCCL kernels; cpu: collective ops on the CPU (gloo, or any backend without GPU activity) */
  side: 'gpu' | 'cpu';
  /** the event names counted */
  names: string[];
  count: number;
  time_s: number;
  /**
   * gpu: time_s over the GPU's activity time (the profiler's "Self CUDA %"); cpu: the time covered by
   * its calls (union: calls on several threads may overlap) over the region's wall time. Percent.
   */
  share_pct: number;
  share_of: 'gpu-activity' | 'region';
}

export interface SyncStats {
  /** the headline count: aten::item calls if any, else the most frequent sync kind */
  count: number;
  headline: string | null;
  kinds: { name: string; count: number; time_s: number }[];
}

export interface LaunchStats {
  count: number;
  time_s: number;
  by_api: { name: string; count: number; time_s: number }[];
}

export interface ModuleStat {
  name: string;
  count: number;
  cpu_time_s: number;
  /** time of the same range on the GPU (gpu_user_annotation), when the trace has it */
  gpu_time_s?: number;
}

export interface OpRow {
  name: string;
  calls: number;
  cpu_self_s: number;
  cpu_total_s: number;
  device_self_s: number;
  device_total_s: number;
}

/**
 * The k-th call of one collective kind on every rank, matched by order. Arrival = start of the
 * call (GPU kernel start for NCCL, op start for CPU collectives) on the aligned clock.
 */
export interface CollectiveSkew {
  kind: string;
  label: string;
  side: 'gpu' | 'cpu';
  ranks: number[];
  /** calls per rank; only the first min(calls) are matched */
  calls_per_rank: Record<string, number>;
  matched_calls: number;
  /** last arrival − first arrival, per call */
  skew_ms: { mean: number; p50: number; p95: number; max: number };
  /** Σ over calls and ranks of (last arrival − own arrival) */
  wait_total_s: number;
  wait_per_rank_s: Record<string, number>;
  /** how often each rank arrived last */
  last_arrivals: Record<string, number>;
  /** the rank that arrived last most often, with the mean skew of the calls it was last at */
  straggler?: { rank: number; share_pct: number; mean_behind_ms: number };
  histogram: { edges_ms: number[]; counts: number[] };
}

export interface GpuCounters {
  host: string;
  index: number;
  /** the rank on that GPU, when one was */
  rank?: number;
  samples: number;
  util_mean_pct?: number;
  util_p95_pct?: number;
  mem_peak_mib?: number;
  mem_total_mib?: number;
  power_mean_w?: number;
  /** downsampled series for charts; t_s from the start barrier's release */
  series: { t_s: number[]; util_pct: (number | null)[]; mem_mib: (number | null)[] };
}

export interface ProcessCounters {
  rank: number;
  samples: number;
  cpu_mean_pct?: number;
  cpu_p95_pct?: number;
  rss_peak_bytes?: number;
  series: { t_s: number[]; cpu_pct: (number | null)[]; rss_mib: (number | null)[] };
}

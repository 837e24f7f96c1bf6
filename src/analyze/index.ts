// The analysis stage: a run directory → summary.json (see summary.ts for what it holds).
// Each rank's trace is streamed once (ranks one after the other: memory stays that of one pass), its
// op table and rank.json are read, then the ranks are put side by side: collectives matched across
// ranks on the reference clock, nvidia-smi and process samples over the region, and the findings.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { UserError } from '../errors.js';
import { profileDefaults, resolveProfile } from '../plan/index.js';
import { RunDir, writeAtomic, type Manifest, type RankInfo, type RankRecord } from '../run-dir.js';
import { DEFAULT_MODULE_LABELS } from './classify.js';
import { rankAlignment } from './clock.js';
import { scanCompleteEvents } from './events.js';
import { findings } from './findings.js';
import { topOps } from './ops.js';
import { RankMetrics, type RankMetricsResult } from './rank-metrics.js';
import { gpuCounters, processCounters, type Window } from './samples.js';
import { collectiveSkew, type AlignedCalls } from './skew.js';
import { SUMMARY_SCHEMA_VERSION, type RankSummary, type Summary } from './summary.js';

export type { Summary } from './summary.js';

/** align.ts's methods, as the report says them */
const METHOD_TEXT: Record<string, string> = {
  anchors: 'rank.json\'s moe_run/start anchors and clock offset',
  marker: 'the moe_run/start marker in the trace and rank.json\'s anchors',
  absolute: 'the traces\' own epoch times plus rank.json\'s clock offset',
  'profiler-start': 'the profiler\'s start time (approximate)',
};

/** The record_function labels the run's hooks used (the config's, or its workload's defaults). */
function moduleLabels(m: Manifest): string[] {
  try {
    const hooks = resolveProfile(m.config.profile, profileDefaults(m.config)).hooks ?? [];
    const labels = hooks.map((h) => h.label ?? h.target.split(':')[1].split('.').pop()!);
    return labels.length ? labels : DEFAULT_MODULE_LABELS;
  } catch {
    return DEFAULT_MODULE_LABELS; // a manifest from another version: fairseq's names
  }
}

/** rank.json through the run directory; an unreadable one is a note, not a failure. */
async function readRankInfo(run: RunDir, rank: number, notes: string[]): Promise<RankInfo | null> {
  try {
    return await run.readRankInfo(rank);
  } catch (e) {
    notes.push(`rank ${rank}: rank.json unreadable (${(e as Error).message})`);
    return null;
  }
}

interface RankPass {
  summary: RankSummary;
  calls: AlignedCalls[];
  /** the region on the reference clock, when the trace could be placed */
  regionRef: { start: bigint; end: bigint } | null;
  /** how the trace was put on the reference clock (align.ts's method), null when it could not be */
  aligned: string | null;
}

async function analyzeRank(run: RunDir, rank: number, record: RankRecord | undefined, labels: string[], notes: string[]): Promise<RankPass> {
  const info = await readRankInfo(run, rank, notes);
  notes.push(...(info?.notes ?? []).map((n) => `rank ${rank}: ${n}`));
  const trace = await run.traceFile(rank);
  let metrics: RankMetricsResult = new RankMetrics(labels).finish();
  let calls: AlignedCalls[] = [];
  let regionRef: RankPass['regionRef'] = null;
  let aligned: string | null = null;
  let format: string | null = info?.trace_format ?? null;
  if (!trace) {
    notes.push(`rank ${rank}: no trace${record?.status && record.status !== 'ok' ? ` (the rank ${record.status})` : ''}`);
  } else {
    const acc = new RankMetrics(labels);
    try {
      const { meta, warnings } = await scanCompleteEvents(trace, (ev) => acc.add(ev));
      notes.push(...warnings.map((w) => `rank ${rank}: ${w}`));
      format = meta.format;
      metrics = acc.finish();
      const alignment = rankAlignment(info, meta, metrics.markerNs, metrics.firstNs);
      if (alignment && metrics.regionStartNs !== null) {
        const shift = alignment.shiftNs;
        aligned = alignment.method;
        const start = metrics.regionStartNs + shift;
        regionRef = { start, end: start + BigInt(Math.round(metrics.region_s * 1e9)) };
        calls = metrics.calls.map((c) => ({ rank, kind: c.kind, label: c.label, side: c.side, starts: c.starts.map((s) => s + shift) }));
      } else if (metrics.calls.length) {
        notes.push(`rank ${rank}: the trace has relative times and rank.json no anchors, so its collectives are left out of the cross-rank skew`);
      }
    } catch (e) {
      notes.push(`rank ${rank}: trace unreadable (${(e as Error).message})`);
    }
  }
  let ops: Awaited<ReturnType<typeof topOps>> = { cpu: [], device: [] };
  try {
    ops = await topOps(run.opsJson(rank));
  } catch (e) {
    notes.push(`rank ${rank}: ops.json unreadable (${(e as Error).message})`);
  }
  const { calls: _calls, regionStartNs: _start, markerNs: _marker, firstNs: _first, ...measured } = metrics;
  const summary: RankSummary = {
    rank,
    host: info?.host ?? record?.host ?? '',
    device: record?.device ?? '',
    status: record?.status ?? (info ? 'ok' : 'unknown'),
    ...(record?.reason ? { reason: record.reason } : {}),
    trace_file: trace ? basename(trace) : null,
    trace_format: format,
    ...measured,
    stages: info?.stages ?? {},
    ...(info?.steps !== undefined ? { steps: info.steps } : {}),
    ...(info?.throughput ? { tokens: info.throughput.tokens, tokens_per_s: info.throughput.tokens_per_s } : {}),
    ...(info?.loss !== undefined ? { loss: info.loss } : {}),
    ...(info?.perplexity !== undefined ? { perplexity: info.perplexity } : {}),
    top_ops_cpu: ops.cpu,
    top_ops_device: ops.device,
  };
  return { summary, calls, regionRef, aligned };
}

/** Analyzes a run directory and writes its summary.json. */
export async function analyzeRunDir(dir: string): Promise<Summary> {
  const run = new RunDir(dir);
  if (!run.isRunDir()) throw new UserError(`${dir} is not a run directory (no manifest.json in it)`);
  let manifest: Manifest;
  try {
    manifest = await run.readManifest();
  } catch (e) {
    throw new UserError(`${run.manifest}: unreadable (${(e as Error).message}); a run directory needs its manifest`);
  }
  const notes: string[] = [];
  const labels = moduleLabels(manifest);
  const rankIds = await run.allRanks(manifest);

  const passes: RankPass[] = [];
  for (const rank of rankIds) {
    passes.push(await analyzeRank(run, rank, manifest.ranks?.find((r) => r.rank === rank), labels, notes));
  }

  const placed = passes.filter((p) => p.regionRef !== null);
  const traced = passes.filter((p) => p.summary.trace_file !== null);
  const byMethod = new Map<string, number[]>();
  for (const p of placed) byMethod.set(p.aligned!, [...(byMethod.get(p.aligned!) ?? []), p.summary.rank]);
  const method = placed.length === 0
    ? 'not aligned: no trace could be placed on the reference clock'
    : `placed on the reference clock by ${[...byMethod].map(([m, rs]) => `${METHOD_TEXT[m] ?? m} (rank${rs.length > 1 ? 's' : ''} ${rs.join(', ')})`).join('; ')}`;
  if (placed.length < traced.length) notes.push(`${traced.length - placed.length} of ${traced.length} traces could not be placed on the reference clock`);

  // The counters' window: the start barrier's release (or the earliest region start) to the latest
  // region end in the traces (or, without traces, the end barrier, which waits for the export too).
  const releases = manifest.rendezvous?.releases ?? {};
  const minStart = placed.length ? placed.map((p) => p.regionRef!.start).reduce((a, b) => (b < a ? b : a)) : undefined;
  const maxEnd = placed.length ? placed.map((p) => p.regionRef!.end).reduce((a, b) => (b > a ? b : a)) : undefined;
  const t0 = releases.start ? BigInt(releases.start) : minStart;
  const window: Window = { from: t0, to: maxEnd ?? (releases.end ? BigInt(releases.end) : undefined), t0 };
  const rankOf = new Map<string, number>();
  for (const r of manifest.ranks ?? []) {
    const m = /^cuda:(\d+)$/.exec(r.device);
    if (m) rankOf.set(`${r.host}/${m[1]}`, r.rank);
  }
  const [gpu_counters, process_counters] = await Promise.all([
    gpuCounters(run.nvidiaSmiCsv, window, rankOf),
    processCounters(run.processCsv, window),
  ]);
  if (!existsSync(run.nvidiaSmiCsv)) {
    notes.push('no samples/nvidia-smi.csv: GPU counters not sampled');
    // why, as the launcher noted it in the manifest (e.g. "nvidia-smi not found on PATH")
    notes.push(...(manifest.notes ?? []).filter((n) => n.includes('nvidia-smi')));
  }
  else if (!gpu_counters.length) notes.push('samples/nvidia-smi.csv has no row with a GPU index inside the region');

  const body: Omit<Summary, 'findings'> = {
    schema: SUMMARY_SCHEMA_VERSION,
    run: {
      name: manifest.name,
      run_id: manifest.run_id,
      dir: run.root,
      created: manifest.created,
      status: manifest.status,
      ...(manifest.failure ? { failure: manifest.failure.reason } : {}),
      world_size: manifest.world_size,
      nnodes: manifest.nnodes,
      config: manifest.config,
      ...(t0 !== undefined ? { t0_ns: t0.toString() } : {}),
    },
    clock: { aligned: placed.length > 0 && placed.length === traced.length, method },
    ranks: passes.map((p) => p.summary),
    collectives: collectiveSkew(placed.flatMap((p) => p.calls)),
    gpu_counters,
    process_counters,
    notes,
  };
  const summary: Summary = { ...body, findings: findings(body) };
  await writeAtomic(run.summary, JSON.stringify(summary, null, 1) + '\n');
  return summary;
}

/** The run's summary.json, analyzing the run first when it has none. */
export async function loadSummary(dir: string): Promise<Summary> {
  const run = new RunDir(dir);
  if (existsSync(run.summary)) {
    const s = JSON.parse(await readFile(run.summary, 'utf8')) as Summary;
    if (s.schema === SUMMARY_SCHEMA_VERSION) return s;
  }
  return analyzeRunDir(dir);
}

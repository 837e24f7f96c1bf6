// The unified timeline (DESIGN.md, "The unified timeline"): every rank's trace, streamed, clock-aligned
// (align.ts), remapped (remap.ts), plus the samplers' counters and the launcher's events (counters.ts),
// written as one timeline.json.gz (writer.ts). Memory stays flat: each input is read once, chunk by
// chunk, and the output is written as it is produced; only metadata events and id maps are kept.
//
//   mergeRunDir(dir)             a run directory → <dir>/timeline.json.gz (what every run does at its end)
//   mergeTraceFiles(files, out)  any per-rank traces (e.g. a torchrun job's) → out
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { UserError } from '../errors.js';
import { RunDir, type Manifest, type RankInfo } from '../run-dir.js';
import {
  alignAbsolute, alignFirstEvent, alignFromAnchors, alignProfilerStart, clockOffsetOf, START_MARKER, type Alignment,
} from './align.js';
import { writeGpuCounters, writeLauncherEvents, writeProcessCounters } from './counters.js';
import { absoluteNs, scanTrace, TraceFormatError, type TraceMeta } from './reader.js';
import { PidAllocator, RankRemap } from './remap.js';
import { formatUs, fromNs, parseUsBytes, toNs, type UsNs } from './time.js';
import { TimelineWriter, type WriterOptions } from './writer.js';

export type Log = (line: string) => void;

export type RankSource = 'run directory' | 'distributedInfo' | 'file name' | 'argument order';

/** What the output's metadata (and the caller) learn about each merged rank. */
export interface MergedRank {
  rank: number;
  rank_source: string;
  trace: string | null;
  format: string | null;
  alignment: { method: string; shift_ns: string; clock_offset_ns: string; detail: string } | null;
  events: number;
  truncated: boolean;
  /** timeline ts (µs) of the rank's earliest and latest event start, exact */
  first_ts_us: string | null;
  last_ts_us: string | null;
  processes: Array<{ pid: number; name: string }>;
}

export interface MergeResult {
  out: string;
  warnings: string[];
  ranks: MergedRank[];
  /** events written, all kinds */
  events: number;
  /** decompressed bytes of trace input */
  inputBytes: number;
  /** the timeline's zero, epoch ns on the reference clock */
  zeroNs: bigint;
}

export interface MergeOptions extends WriterOptions {
  log?: Log;
  /** mergeRunDir: write here instead of <dir>/timeline.json.gz (plain JSON unless it ends in .gz) */
  out?: string;
}

interface Input {
  path: string | null;
  rank: number;
  rankSource: string;
  info: RankInfo | null;
  host?: string;
  osPid?: number;
  clockOffsetNs: bigint;
  probe?: Probe;
  alignment?: Alignment;
  /** why the trace was left out (unreadable) */
  dropped?: string;
}

/** What a first, output-less pass over a trace tells: metadata, earliest event, the start marker. */
interface Probe {
  meta: TraceMeta;
  warnings: string[];
  /** earliest ts of a non-metadata event, file time base */
  minNs: bigint | null;
  /** ts of the CPU-side moe_run/start range, file time base */
  markerNs: bigint | null;
}

const MARKER_NAME = Buffer.from(JSON.stringify(START_MARKER));
const GPU_ANNOTATION = Buffer.from('"gpu_user_annotation"');

function spanIs(buf: Buffer, s: number, e: number, text: Buffer): boolean {
  return s >= 0 && e - s === text.length && buf.compare(text, 0, text.length, s, e) === 0;
}

async function probeTrace(path: string): Promise<Probe> {
  let min: UsNs | null = null;
  let marker: UsNs | null = null;
  const t: UsNs = { us: 0, ns: 0 };
  const { meta, warnings } = await scanTrace(path, (v) => {
    if (v.phCode === 0x4d || v.tsS < 0 || !parseUsBytes(v.buf, v.tsS, v.tsE, t)) return;
    if (!min || t.us < min.us || (t.us === min.us && t.ns < min.ns)) min = { us: t.us, ns: t.ns };
    if (!marker && spanIs(v.buf, v.nameS, v.nameE, MARKER_NAME) && !spanIs(v.buf, v.catS, v.catE, GPU_ANNOTATION)) {
      marker = { us: t.us, ns: t.ns };
    }
  });
  return { meta, warnings, minNs: min ? toNs(min) : null, markerNs: marker ? toNs(marker) : null };
}

/** The input's probe; an unreadable trace is dropped from the merge (path null) with a warning. */
async function probed(inp: Input): Promise<Probe | undefined> {
  if (inp.path && !inp.probe) {
    try {
      inp.probe = await probeTrace(inp.path);
    } catch (e) {
      if (!(e instanceof TraceFormatError)) throw e;
      inp.dropped = `rank ${inp.rank}: ${e.message}: left out`;
      inp.path = null;
    }
  }
  return inp.probe;
}

/**
 * Chooses each input's alignment (align.ts, best method first) and the timeline's zero when the run
 * gives none (then: the earliest event of the inputs that have absolute time, else 0).
 */
async function alignInputs(inputs: Input[], zero: bigint | null): Promise<bigint> {
  if (zero !== null) {
    for (const inp of inputs) {
      if (!inp.path || !inp.info) continue;
      inp.alignment = alignFromAnchors(inp.info, zero) ?? undefined;
      if (!inp.alignment && inp.info.anchors?.start_marker_local_ns) {
        inp.alignment = alignFromAnchors(inp.info, zero, (await probed(inp))?.markerNs) ?? undefined;
      }
    }
  }
  for (const inp of inputs.filter((i) => i.path && !i.alignment)) await probed(inp);
  const rest = inputs.filter((i) => i.path && !i.alignment);
  if (zero === null) {
    let earliest: bigint | null = null;
    for (const inp of rest) {
      const p = inp.probe!;
      const abs = p.minNs === null ? null : absoluteNs(p.meta, p.minNs);
      if (abs !== null && (earliest === null || abs + inp.clockOffsetNs < earliest)) earliest = abs + inp.clockOffsetNs;
    }
    zero = earliest ?? 0n;
  }
  for (const inp of rest) {
    const p = inp.probe!;
    const min = p.minNs ?? 0n;
    inp.alignment =
      alignAbsolute(p.meta, min, inp.clockOffsetNs, zero) ??
      (inp.info ? alignProfilerStart(inp.info, zero) : null) ??
      alignFirstEvent(min);
  }
  return zero;
}

/** The merge proper: inputs in rank order, then counters and launcher events, then names. */
async function writeTimeline(
  inputs: Input[],
  out: string,
  zero: bigint,
  opts: MergeOptions,
  extras: {
    run?: { dir: string; manifest: Manifest };
    zeroSource: string;
    warnings: string[];
  },
): Promise<MergeResult> {
  const log = opts.log ?? (() => {});
  const warnings = extras.warnings;
  const w = TimelineWriter.open(out, opts);
  const pids = new PidAllocator();
  const remaps = new Map<number, RankRemap>();
  const ranks: MergedRank[] = [];
  let inputBytes = 0;
  try {
    for (const inp of [...inputs].sort((a, b) => a.rank - b.rank)) {
      const shift = inp.alignment ? fromNs(inp.alignment.shiftNs) : { us: 0, ns: 0 };
      const rm = new RankRemap({ rank: inp.rank, host: inp.host, osPid: inp.osPid }, shift, pids);
      remaps.set(inp.rank, rm);
      let meta: TraceMeta | null = null;
      if (inp.path) {
        log(`merge: rank ${inp.rank} ← ${inp.path} (${inp.alignment?.method})`);
        try {
          const res = await scanTrace(inp.path, (v) => rm.write(v, w), () => w.drain());
          meta = res.meta;
          inputBytes += meta.bytes;
          for (const line of res.warnings) if (!warnings.includes(line)) warnings.push(line);
        } catch (e) {
          if (!(e instanceof TraceFormatError)) throw e;
          warnings.push(`rank ${inp.rank}: ${e.message}: left out`);
        }
        if (rm.badTs > 0) warnings.push(`${inp.path}: ${rm.badTs} events with an unreadable ts were kept unshifted`);
      }
      ranks.push({
        rank: inp.rank,
        rank_source: inp.rankSource,
        trace: inp.path,
        format: meta?.format ?? null,
        alignment: inp.alignment
          ? {
              method: inp.alignment.method,
              shift_ns: String(inp.alignment.shiftNs),
              clock_offset_ns: String(inp.alignment.clockOffsetNs),
              detail: inp.alignment.detail,
            }
          : null,
        events: rm.events,
        truncated: meta?.truncated ?? false,
        first_ts_us: rm.minTs && formatUs(rm.minTs.us, rm.minTs.ns),
        last_ts_us: rm.maxTs && formatUs(rm.maxTs.us, rm.maxTs.ns),
        processes: [],
      });
    }

    const counters: Record<string, number> = {};
    if (extras.run) {
      const { dir, manifest } = extras.run;
      const rd = new RunDir(dir);
      const gpuPid = gpuPidResolver(manifest, remaps, pids, w);
      const gpu = await writeGpuCounters(w, rd.nvidiaSmiCsv, zero, gpuPid);
      const proc = await writeProcessCounters(w, rd.processCsv, zero, (rank) => remaps.get(rank)?.cpuPid() ?? null);
      counters.gpu_samples = gpu.samples;
      counters.process_samples = proc.samples;
      if (gpu.skipped + proc.skipped > 0) warnings.push(`samples: ${gpu.skipped + proc.skipped} rows without a usable time, index or rank were skipped`);
      counters.launcher_events = writeLauncherEvents(w, manifest.events ?? [], zero);
    }
    for (const rm of remaps.values()) rm.finish(w);
    for (const r of ranks) r.processes = remaps.get(r.rank)!.processes().map(({ pid, name }) => ({ pid, name }));

    for (const line of warnings) log(`merge: warning: ${line}`);
    await w.close({
      displayTimeUnit: 'ns',
      metadata: {
        generator: 'moe-run merge',
        run: extras.run ? { name: extras.run.manifest.name, run_id: extras.run.manifest.run_id, dir: extras.run.dir } : null,
        time_unit: 'µs from the zero, on the reference clock (node 0 launcher), ns decimals exact',
        zero: { epoch_ns: String(zero), source: extras.zeroSource },
        ranks,
        counters,
        warnings,
      },
    });
  } catch (e) {
    w.destroy();
    throw e;
  }
  log(`merge: ${w.count} events from ${inputs.filter((i) => i.path).length} traces → ${out}`);
  return { out, warnings, ranks, events: w.count, inputBytes, zeroNs: zero };
}

/** nvidia-smi (host, index) → the process of the rank using that GPU, else a process of its own. */
function gpuPidResolver(manifest: Manifest, remaps: Map<number, RankRemap>, pids: PidAllocator, w: TimelineWriter) {
  const singleHost = new Set(manifest.ranks.map((r) => r.host)).size <= 1;
  const orphans = new Map<string, number>();
  return (host: string, index: number): number => {
    const owner = manifest.ranks.find(
      (r) => r.device === `cuda:${index}` && (singleHost || r.host === host) && remaps.has(r.rank),
    );
    if (owner) return remaps.get(owner.rank)!.gpuPid(index);
    const key = `${host}/${index}`;
    let pid = orphans.get(key);
    if (pid === undefined) {
      pid = pids.take();
      orphans.set(key, pid);
      w.event({ ph: 'M', cat: 'moe-run', name: 'process_name', pid, tid: 0, args: { name: `${host || 'host'} · GPU ${index} (no rank)` } });
      w.event({ ph: 'M', cat: 'moe-run', name: 'process_sort_index', pid, tid: 0, args: { sort_index: 1_000_000_000 + index } });
    }
    return pid;
  };
}

/** Rebuilds <dir>/timeline.json.gz from the run directory alone. */
export async function mergeRunDir(dir: string, opts: MergeOptions | Log = {}): Promise<MergeResult> {
  const o: MergeOptions = typeof opts === 'function' ? { log: opts } : opts;
  const rd = new RunDir(dir);
  if (!rd.isRunDir()) throw new UserError(`${dir}: not a run directory (no manifest.json); to merge trace files use: moe-run merge -o OUT.json.gz TRACE…`);
  const manifest = await rd.readManifest();
  const warnings: string[] = [];

  const inputs: Input[] = [];
  for (const rank of await rd.allRanks(manifest)) {
    const rec = manifest.ranks.find((r) => r.rank === rank);
    const info = await rd.readRankInfo(rank);
    const path = await rd.traceFile(rank);
    if (!path) warnings.push(`rank ${rank}: no trace in ${rd.rankDir(rank)}${rec?.status ? ` (rank ${rec.status})` : ''}`);
    const offset = info ? clockOffsetOf(info) : BigInt(manifest.rendezvous?.clock_offsets?.[String(rank)]?.offset_ns ?? 0);
    inputs.push({
      path,
      rank,
      rankSource: 'run directory',
      info,
      host: info?.host ?? rec?.host,
      osPid: info?.pid ?? rec?.pid,
      clockOffsetNs: offset,
    });
  }
  const release = manifest.rendezvous?.releases?.start;
  const zero = await alignInputs(inputs, release && /^\d+$/.test(release) ? BigInt(release) : null);
  for (const inp of inputs) {
    if (inp.alignment && inp.alignment.method !== 'anchors') {
      warnings.push(`rank ${inp.rank}: aligned by ${inp.alignment.method} (${inp.alignment.detail}), not by its rank.json anchors`);
    }
  }
  for (const inp of inputs) {
    if (inp.probe) warnings.push(...inp.probe.warnings.filter((x) => !warnings.includes(x)));
    if (inp.dropped) warnings.push(inp.dropped);
  }
  return writeTimeline(inputs, o.out ?? rd.timeline, zero, o, {
    run: { dir: rd.root, manifest },
    zeroSource: release ? 'rendezvous release of barrier "start"' : 'earliest event with absolute time (no barrier release recorded)',
    warnings: dedupe(warnings),
  });
}

/** Rank from the file name: "rank-3", "rank_3", "rank3" (not "rank_not_found"). */
export function rankFromFileName(path: string): number | null {
  const m = /(?:^|[^a-z])rank[-_]?(\d+)(?!\d)/i.exec(basename(path));
  return m ? Number(m[1]) : null;
}

/**
 * Merges per-rank trace files given by hand. Rank: distributedInfo.rank, else the file name, else the
 * argument order (a rank already taken moves to the lowest free one; the output says which was used).
 * Time: each trace's own absolute time, relative to the earliest event of all; traces without one
 * (legacy) put their first event there.
 */
export async function mergeTraceFiles(files: string[], out: string, opts: MergeOptions | Log = {}): Promise<MergeResult> {
  const o: MergeOptions = typeof opts === 'function' ? { log: opts } : opts;
  if (files.length === 0) throw new UserError('merge: no trace files given (moe-run merge -o OUT.json.gz TRACE…)');
  for (const f of files) if (!existsSync(f)) throw new UserError(`merge: ${f}: no such file`);
  const inputs: Input[] = [];
  const taken = new Set<number>();
  const warnings: string[] = [];
  const probes: Probe[] = [];
  for (const path of files) {
    try {
      probes.push(await probeTrace(path));
    } catch (e) {
      throw e instanceof TraceFormatError ? new UserError(`merge: ${e.message}`) : e;
    }
  }
  const wanted = files.map((path, i) => {
    const fromInfo = probes[i].meta.rank;
    const fromName = rankFromFileName(path);
    return fromInfo !== undefined
      ? { rank: fromInfo, source: 'distributedInfo' as RankSource }
      : fromName !== null
        ? { rank: fromName, source: 'file name' as RankSource }
        : { rank: i, source: 'argument order' as RankSource };
  });
  files.forEach((path, i) => {
    let { rank, source } = wanted[i];
    let rankSource: string = source;
    if (taken.has(rank)) {
      const wantedRank = rank;
      rank = 0;
      while (taken.has(rank) || wanted.some((x, j) => j > i && x.rank === rank)) rank++;
      rankSource = `${source} said rank ${wantedRank}, already taken: renumbered`;
      warnings.push(`${path}: rank ${wantedRank} (${source}) is already taken; merged as rank ${rank}`);
    }
    taken.add(rank);
    const host = probes[i].meta.extra.host_name; // some Kineto traces name their host
    inputs.push({ path, rank, rankSource, info: null, host: typeof host === 'string' ? host : undefined, clockOffsetNs: 0n, probe: probes[i] });
    warnings.push(...probes[i].warnings);
  });
  const zero = await alignInputs(inputs, null);
  return writeTimeline(inputs, out, zero, o, {
    zeroSource: 'earliest event of the traces with absolute time',
    warnings: dedupe(warnings),
  });
}

function dedupe(lines: string[]): string[] {
  return [...new Set(lines)];
}

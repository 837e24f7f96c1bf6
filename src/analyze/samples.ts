// GPU and process counters over the profiled region, from samples/nvidia-smi.csv and
// samples/process.csv (columns: docs/contracts.md). Rows are read one at a time; per GPU or rank only
// the values inside the region are kept (a number each), for the statistics and the charts.
import { existsSync } from 'node:fs';
import { readCsvRecords, sampleNumber } from '../sample/csv.js';
import type { GpuCounters, ProcessCounters } from './summary.js';

/** Region on the reference clock, epoch ns; either end may be open. t0: zero of the series (default: first sample). */
export interface Window { from?: bigint; to?: bigint; t0?: bigint; }

export function mean(xs: number[]): number | undefined {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
}

export function max(xs: number[]): number | undefined {
  return xs.length ? xs.reduce((a, b) => (b > a ? b : a)) : undefined;
}

/** Nearest-rank percentile. */
export function percentile(xs: number[], p: number): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const MAX_POINTS = 400;

/** At most MAX_POINTS points: each kept point is the mean of a run of neighbours (charts only). */
function downsample(t: number[], ys: (number | null)[][]): { t: number[]; ys: (number | null)[][] } {
  if (t.length <= MAX_POINTS) return { t, ys };
  const step = t.length / MAX_POINTS;
  const outT: number[] = [];
  const outYs: (number | null)[][] = ys.map(() => []);
  for (let b = 0; b < MAX_POINTS; b++) {
    const lo = Math.floor(b * step);
    const hi = Math.floor((b + 1) * step);
    outT.push(t[lo]);
    ys.forEach((y, k) => {
      const vals = y.slice(lo, hi).filter((v): v is number => v !== null);
      outYs[k].push(vals.length ? (mean(vals) as number) : null);
    });
  }
  return { t: outT, ys: outYs };
}

function inWindow(ns: bigint, w: Window): boolean {
  return (w.from === undefined || ns >= w.from) && (w.to === undefined || ns <= w.to);
}

/** Seconds from the window's t0, or from the first sample seen when the window has none. */
function clockFrom(w: Window): (ns: bigint) => number {
  let t0 = w.t0;
  return (ns) => Number(ns - (t0 ??= ns)) / 1e9;
}

function parseNs(text: string | undefined): bigint | null {
  return text && /^\d+$/.test(text) ? BigInt(text) : null;
}

/**
 * Per GPU (host, index): utilisation mean/p95, peak memory, mean power within the window.
 * `rankOf` maps "host/index" to the rank that ran on that GPU.
 */
export async function gpuCounters(path: string, w: Window, rankOf: Map<string, number>): Promise<GpuCounters[]> {
  if (!existsSync(path)) return [];
  const seconds = clockFrom(w);
  const gpus = new Map<string, { host: string; index: number; t: number[]; util: (number | null)[]; mem: (number | null)[]; power: number[]; total: number | null }>();
  for await (const r of readCsvRecords(path)) {
    const ns = parseNs(r.recv_ns);
    const index = sampleNumber(r.index);
    if (ns === null || index === null || !inWindow(ns, w)) continue;
    const key = `${r.host}/${index}`;
    let g = gpus.get(key);
    if (!g) gpus.set(key, (g = { host: r.host, index, t: [], util: [], mem: [], power: [], total: null }));
    g.t.push(seconds(ns));
    g.util.push(sampleNumber(r['utilization.gpu']));
    g.mem.push(sampleNumber(r['memory.used']));
    const p = sampleNumber(r['power.draw']);
    if (p !== null) g.power.push(p);
    g.total = sampleNumber(r['memory.total']) ?? g.total;
  }
  return [...gpus.entries()]
    .sort((a, b) => (a[1].host === b[1].host ? a[1].index - b[1].index : a[1].host < b[1].host ? -1 : 1))
    .map(([key, g]) => {
      const util = g.util.filter((v): v is number => v !== null);
      const mem = g.mem.filter((v): v is number => v !== null);
      const ds = downsample(g.t, [g.util, g.mem]);
      const rank = rankOf.get(key);
      return {
        host: g.host,
        index: g.index,
        ...(rank !== undefined ? { rank } : {}),
        samples: g.t.length,
        util_mean_pct: mean(util),
        util_p95_pct: percentile(util, 95),
        mem_peak_mib: max(mem),
        mem_total_mib: g.total ?? undefined,
        power_mean_w: mean(g.power),
        series: { t_s: ds.t, util_pct: ds.ys[0], mem_mib: ds.ys[1] },
      };
    });
}

/** Per rank: CPU % (mean, p95) and peak RSS of its process tree within the window. */
export async function processCounters(path: string, w: Window): Promise<ProcessCounters[]> {
  if (!existsSync(path)) return [];
  const seconds = clockFrom(w);
  const ranks = new Map<number, { t: number[]; cpu: (number | null)[]; rss: (number | null)[] }>();
  for await (const r of readCsvRecords(path)) {
    const ns = parseNs(r.recv_ns);
    const rank = sampleNumber(r.rank);
    if (ns === null || rank === null || !inWindow(ns, w)) continue;
    let p = ranks.get(rank);
    if (!p) ranks.set(rank, (p = { t: [], cpu: [], rss: [] }));
    p.t.push(seconds(ns));
    p.cpu.push(sampleNumber(r.cpu_percent));
    p.rss.push(sampleNumber(r.rss_bytes));
  }
  return [...ranks.entries()].sort((a, b) => a[0] - b[0]).map(([rank, p]) => {
    const cpu = p.cpu.filter((v): v is number => v !== null);
    const rss = p.rss.filter((v): v is number => v !== null);
    const ds = downsample(p.t, [p.cpu, p.rss.map((b) => (b === null ? null : b / 2 ** 20))]);
    return {
      rank,
      samples: p.t.length,
      cpu_mean_pct: mean(cpu),
      cpu_p95_pct: percentile(cpu, 95),
      rss_peak_bytes: max(rss),
      series: { t_s: ds.t, cpu_pct: ds.ys[0], rss_mib: ds.ys[1] },
    };
  });
}

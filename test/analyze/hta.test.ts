// The analysis on real profiler traces (../shared/traces/hta), checked against an independent, plain
// computation over the whole JSON: NCCL kernels, GPU busy %, syncs, launches, and the straggler
// analysis of the real rank-0/1 pair.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeRunDir } from '../../src/analyze/index.js';
import type { Summary } from '../../src/analyze/summary.js';
import { HTA, loadTrace, makeRunDir } from './helpers.js';

type Ev = Record<string, any>;

/** Complete events of the job (the profiler's own "Trace" span excluded), as numbers in µs. */
const complete = (evs: Ev[]) => evs.filter((e) => e.ph === 'X' && e.cat !== 'Trace' && typeof e.ts === 'number');

function unionLength(iv: [number, number][], from: number, to: number): number {
  const s = iv.map(([a, b]) => [Math.max(a, from), Math.min(b, to)]).filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let cur: number[] | null = null;
  for (const [a, b] of s) {
    if (cur && a <= cur[1]) cur[1] = Math.max(cur[1], b);
    else {
      if (cur) total += cur[1] - cur[0];
      cur = [a, b];
    }
  }
  return cur ? total + cur[1] - cur[0] : total;
}

/** What the test expects, computed plainly from the parsed JSON. */
function expected(path: string) {
  const evs = complete(loadTrace(path).traceEvents);
  const from = Math.min(...evs.map((e) => e.ts));
  const to = Math.max(...evs.map((e) => e.ts + (e.dur ?? 0)));
  const gpuCats = ['kernel', 'gpu_memcpy', 'gpu_memset', 'Kernel', 'Memcpy', 'Memset'];
  const gpu = evs.filter((e) => gpuCats.includes(e.cat));
  const busyPct = new Map<number, number>();
  for (const pid of new Set(gpu.map((e) => e.pid))) {
    const iv = gpu.filter((e) => e.pid === pid).map((e): [number, number] => [e.ts, e.ts + e.dur]);
    busyPct.set(pid, (100 * unionLength(iv, from, to)) / (to - from));
  }
  const nccl = new Map<string, { count: number; us: number }>();
  for (const e of evs) {
    const m = /^nccl(?:Dev)?Kernel_([A-Za-z]+)/.exec(e.name);
    if ((e.cat === 'kernel' || e.cat === 'Kernel') && m) {
      const k = nccl.get(m[1]) ?? { count: 0, us: 0 };
      k.count++;
      k.us += e.dur;
      nccl.set(m[1], k);
    }
  }
  const countName = (n: string) => evs.filter((e) => e.name === n).length;
  return {
    regionUs: to - from,
    busyPct,
    nccl,
    gpuActivityUs: gpu.reduce((a, e) => a + e.dur, 0),
    item: countName('aten::item'),
    streamSync: countName('cudaStreamSynchronize'),
    deviceSync: countName('cudaDeviceSynchronize'),
    eventSync: countName('cudaEventSynchronize'),
    dtoh: evs.filter((e) => e.cat === 'gpu_memcpy' && /DtoH/.test(e.name)).length,
    launches: evs.filter((e) => /^(cudaLaunchKernel|cudaLaunchKernelExC|cuLaunchKernel)$/.test(e.name)).length,
  };
}

const syncCount = (s: Summary, name: string) => s.ranks[0].syncs.kinds.find((k) => k.name === name)?.count ?? 0;

const SINGLE = [
  'trace_filter/sampled_rank-0.json.gz',
  'nccl_parser_config/nccl_data.json.gz',
  'ns_resolution_trace/rank-0.Apr_03_18_51_38.1102.pt.trace.json.gz',
  'trace_file_list/inference_rank_1.json.gz',
];

describe('analysis of single real traces', () => {
  for (const file of SINGLE) {
    it(`${file}: NCCL kernels, GPU busy %, syncs and launches match a plain computation`, async () => {
      const path = join(HTA, file);
      const want = expected(path);
      const dir = await makeRunDir('hta', [{ rank: 0, trace: path }]);
      const s = await analyzeRunDir(dir);
      const r = s.ranks[0];

      expect(r.region_s).toBeCloseTo(want.regionUs / 1e6, 6);
      // to 0.005 points: JSON.parse reads float epoch µs (1.7e15) only to 0.25 µs, the analysis exactly
      expect(new Map(r.gpus.map((g) => [g.device, g.busy_pct]))).toEqual(
        new Map([...want.busyPct].map(([d, p]) => [d, expect.closeTo(p, 2)])));

      const gpuColl = r.collectives.filter((c) => c.side === 'gpu');
      expect(gpuColl.reduce((a, c) => a + c.count, 0)).toBe([...want.nccl.values()].reduce((a, k) => a + k.count, 0));
      for (const [word, k] of want.nccl) {
        const c = gpuColl.find((x) => x.names.some((n) => n.includes(`Kernel_${word}`)));
        expect(c, `collective for ${word}`).toBeDefined();
        expect(c!.count).toBe(k.count);
        expect(c!.time_s).toBeCloseTo(k.us / 1e6, 6);
        expect(c!.share_pct).toBeCloseTo((100 * k.us) / want.gpuActivityUs, 3);
      }

      expect(syncCount(s, 'aten::item')).toBe(want.item);
      expect(syncCount(s, 'cudaStreamSynchronize')).toBe(want.streamSync);
      expect(syncCount(s, 'cudaDeviceSynchronize')).toBe(want.deviceSync);
      expect(syncCount(s, 'cudaEventSynchronize')).toBe(want.eventSync);
      expect(syncCount(s, 'Memcpy DtoH')).toBe(want.dtoh);
      expect(r.launches.count).toBe(want.launches);
    });
  }

  it('the sampled rank finds all-to-all (NCCL SendRecv) the heaviest collective and says so', async () => {
    const path = join(HTA, 'trace_filter/sampled_rank-0.json.gz');
    const want = expected(path).nccl.get('SendRecv')!;
    const s = await analyzeRunDir(await makeRunDir('hta', [{ rank: 0, trace: path }]));
    expect(s.ranks[0].collectives[0].label).toBe('all-to-all (NCCL SendRecv)');
    const share = Math.round((100 * want.us) / expected(path).gpuActivityUs);
    expect(s.findings.join('\n')).toContain(`all-to-all (NCCL SendRecv) takes ${share}% of GPU time on rank 0`);
  });

  it('a CPU-only gloo rank: gloo all-reduce from its annotations, no GPU', async () => {
    const path = join(HTA, 'cpu_only/rank-34.Jul_15_10_52_41.1074.pt.trace.json.gz');
    const evs = complete(loadTrace(path).traceEvents);
    const gloo = evs.filter((e) => e.name === 'gloo:all_reduce');
    const s = await analyzeRunDir(await makeRunDir('gloo', [{ rank: 0, trace: path, device: 'cpu' }]));
    const r = s.ranks[0];
    expect(r.gpus).toEqual([]);
    expect(r.collectives).toHaveLength(1);
    expect(r.collectives[0]).toMatchObject({ kind: 'all_reduce', side: 'cpu', count: gloo.length, label: 'gloo all-reduce' });
    expect(r.collectives[0].time_s).toBeCloseTo(gloo.reduce((a, e) => a + e.dur, 0) / 1e6, 6);
  });
});

describe('straggler analysis of the real rank-0/1 pair', () => {
  it('agrees with the NCCL kernels\' start times on both ranks', async () => {
    const paths = [0, 1].map((r) => join(HTA, `trace_filter/sampled_rank-${r}.json.gz`));
    const starts = paths.map((p) =>
      complete(loadTrace(p).traceEvents).filter((e) => e.cat === 'kernel' && e.name.startsWith('ncclKernel_SendRecv')).map((e) => e.ts as number).sort((a, b) => a - b));
    const n = Math.min(starts[0].length, starts[1].length);
    const last = [0, 0];
    let wait = 0;
    const skews: number[] = [];
    for (let k = 0; k < n; k++) {
      const [a, b] = [starts[0][k], starts[1][k]];
      if (a !== b) last[a > b ? 0 : 1]++;
      wait += Math.abs(a - b);
      skews.push(Math.abs(a - b));
    }
    // rank.json without anchors: the traces' own epoch times, same host, offset 0
    const dir = await makeRunDir('pair', [0, 1].map((rank) => ({ rank, trace: paths[rank], info: {} })));
    const s = await analyzeRunDir(dir);
    const c = s.collectives.find((x) => x.kind === 'all_to_all')!;
    expect(c).toBeDefined();
    expect(c.matched_calls).toBe(n);
    expect(c.last_arrivals).toEqual({ '0': last[0], '1': last[1] });
    expect(c.wait_total_s).toBeCloseTo(wait / 1e6, 6);
    expect(c.skew_ms.max).toBeCloseTo(Math.max(...skews) / 1e3, 6);
    expect(c.skew_ms.mean).toBeCloseTo(skews.reduce((x, y) => x + y, 0) / n / 1e3, 6);
    const straggler = last[0] >= last[1] ? 0 : 1;
    expect(c.straggler?.rank).toBe(straggler);
    expect(c.histogram.counts.reduce((a, b) => a + b, 0)).toBe(n);
    expect(s.findings.some((f) => f.startsWith(`Rank ${straggler} arrives last at`))).toBe(true);
  });

  it('shifts arrivals by the clock offsets in rank.json', async () => {
    const paths = [0, 1].map((r) => join(HTA, `trace_filter/sampled_rank-${r}.json.gz`));
    // rank 1's clock reads 1 s behind the reference: +1 s makes it the last to arrive at every call
    const dir = await makeRunDir('pair-offset', [
      { rank: 0, trace: paths[0], info: {} },
      { rank: 1, trace: paths[1], info: { clock_offset_ns: '1000000000' } },
    ]);
    const c = (await analyzeRunDir(dir)).collectives.find((x) => x.kind === 'all_to_all')!;
    expect(c.last_arrivals).toEqual({ '0': 0, '1': c.matched_calls });
    expect(c.skew_ms.p50).toBeGreaterThan(800);
  });
});

// One rank's metrics from one pass over its trace events. Events are fed one at a time (from the
// streaming reader), and only sums, counts, interval unions and the collectives' start times are
// kept, so memory does not grow with the trace.
import { START_MARKER } from '../trace/align.js';
import {
  cpuCollective,
  gpuActivity,
  isCpuOp,
  isCpuRange,
  isLaunch,
  kindLabel,
  moduleTag,
  ncclKernel,
  syncPoint,
} from './classify.js';
import { IntervalSet, unionOf } from './intervals.js';
import type { CollectiveStat, CpuActivity, GpuActivity, LaunchStats, ModuleStat, SyncStats } from './summary.js';

/** The fields of a trace event the metrics read (the trace reader's events have them). */
export interface MetricEvent {
  ph: string;
  name: string;
  cat?: string;
  pid: number | string;
  tid: number | string;
  /** start, ns, in the trace's own time base */
  tsNs: bigint;
  durNs?: bigint;
  /** arguments; the reader decodes them only where a metric needs them (record_param_comms) */
  args?: Record<string, unknown>;
}

/** A collective call's start, for matching calls across ranks. */
export interface CollectiveCalls {
  kind: string;
  label: string;
  side: 'gpu' | 'cpu';
  /** start of each call in the trace's time base (ns), in order */
  starts: bigint[];
}

export interface RankMetricsResult {
  events: number;
  region_s: number;
  region_source: 'marker' | 'trace-span' | 'none';
  /** region start in the trace's time base (ns); null for an empty trace */
  regionStartNs: bigint | null;
  /** the moe_run/start marker's and the earliest event's start, trace time base (ns) */
  markerNs: bigint | null;
  firstNs: bigint | null;
  gpus: GpuActivity[];
  cpu: CpuActivity;
  collectives: CollectiveStat[];
  calls: CollectiveCalls[];
  syncs: SyncStats;
  launches: LaunchStats;
  modules: ModuleStat[];
}

interface Tally { count: number; ns: number; }
const tally = (m: Map<string, Tally>, k: string, ns: number) => {
  const t = m.get(k) ?? { count: 0, ns: 0 };
  t.count += 1;
  t.ns += ns;
  m.set(k, t);
};

interface GpuAcc {
  comm: IntervalSet;
  compute: IntervalSet;
  memory: IntervalSet;
  kernels: number;
  kernelNs: number;
  memcpyNs: number;
  memsetNs: number;
}

/** One collective kind: summed durations, the union of its intervals (calls may overlap on several threads), starts. */
interface CollAcc { label: string; names: Set<string>; ns: number; spans: IntervalSet; starts: bigint[]; }

const S = (ns: number) => ns / 1e9;
const pct = (part: number, whole: number) => (whole > 0 ? (100 * part) / whole : 0);

export class RankMetrics {
  private origin: bigint | null = null;
  private first = Infinity;
  private last = -Infinity;
  private marker: number | null = null;
  private events = 0;
  private gpus = new Map<number, GpuAcc>();
  private threads = new Map<string, IntervalSet>();
  /** GPU collectives (NCCL kernels) by kind */
  private gpuColl = new Map<string, CollAcc>();
  /** CPU-side collectives by source preference (see cpuCollective), then kind */
  private cpuColl: Map<string, CollAcc>[] = [new Map(), new Map(), new Map()];
  private syncs = new Map<string, Tally>();
  private launches = new Map<string, Tally>();
  private modulesCpu = new Map<string, Tally>();
  private modulesGpu = new Map<string, Tally>();

  constructor(private readonly moduleLabels: readonly string[]) {}

  add(ev: MetricEvent): void {
    if (ev.ph !== 'X' || ev.cat === 'Trace') return; // the profiler's own span is not an event of the job
    if (this.origin === null) this.origin = ev.tsNs;
    const start = Number(ev.tsNs - this.origin);
    const dur = Number(ev.durNs ?? 0n);
    const end = start + dur;
    this.events += 1;
    if (start < this.first) this.first = start;
    if (end > this.last) this.last = end;

    const act = gpuActivity(ev.cat);
    const sync = syncPoint(ev.name, act);
    if (sync) tally(this.syncs, sync, dur);

    if (act) {
      this.addGpu(ev, act, start, end, dur);
      return;
    }
    if (ev.cat === 'gpu_user_annotation') {
      const tag = moduleTag(ev.name, this.moduleLabels);
      if (tag) tally(this.modulesGpu, tag, dur);
      return;
    }
    if (ev.name === START_MARKER) {
      if (this.marker === null || start < this.marker) this.marker = start;
      return;
    }
    if (isLaunch(ev.name)) tally(this.launches, ev.name, dur);

    const coll = cpuCollective(ev.name, ev.args);
    if (coll) {
      const acc = this.coll(this.cpuColl[coll.source], coll.kind, `${coll.backend} ${kindLabel(coll.kind)}`);
      acc.names.add(ev.name === 'record_param_comms' ? `record_param_comms (${String(ev.args?.['Collective name'])})` : ev.name);
      acc.ns += dur;
      acc.spans.add(start, end);
      acc.starts.push(ev.tsNs);
    }
    if (isCpuRange(ev.cat)) {
      const tag = moduleTag(ev.name, this.moduleLabels);
      if (tag) {
        tally(this.modulesCpu, tag, dur);
        return; // a module range is not operator time (legacy traces list it among the ops)
      }
      if (ev.cat === undefined && /^ProfilerStep#/.test(ev.name)) return;
    }
    if (isCpuOp(ev.cat)) {
      const key = `${ev.pid}/${ev.tid}`;
      let set = this.threads.get(key);
      if (!set) this.threads.set(key, (set = new IntervalSet()));
      set.add(start, end);
    }
  }

  private addGpu(ev: MetricEvent, act: 'kernel' | 'memcpy' | 'memset', start: number, end: number, dur: number) {
    const device = typeof ev.pid === 'number' ? ev.pid : 0; // Kineto: a GPU event's pid is its device index
    let g = this.gpus.get(device);
    if (!g) {
      g = { comm: new IntervalSet(), compute: new IntervalSet(), memory: new IntervalSet(), kernels: 0, kernelNs: 0, memcpyNs: 0, memsetNs: 0 };
      this.gpus.set(device, g);
    }
    if (act !== 'kernel') {
      g.memory.add(start, end);
      if (act === 'memcpy') g.memcpyNs += dur;
      else g.memsetNs += dur;
      return;
    }
    g.kernels += 1;
    g.kernelNs += dur;
    const nccl = ncclKernel(ev.name);
    if (!nccl) {
      g.compute.add(start, end);
      return;
    }
    g.comm.add(start, end);
    const label = nccl.word === 'SendRecv' ? `${kindLabel(nccl.kind)} (NCCL SendRecv)` : `NCCL ${kindLabel(nccl.kind)}`;
    const acc = this.coll(this.gpuColl, nccl.kind, label);
    acc.names.add(ev.name.replace(/\(.*$/, ''));
    acc.ns += dur;
    acc.starts.push(ev.tsNs);
  }

  private coll(m: Map<string, CollAcc>, kind: string, label: string): CollAcc {
    let acc = m.get(kind);
    if (!acc) m.set(kind, (acc = { label, names: new Set(), ns: 0, spans: new IntervalSet(), starts: [] }));
    return acc;
  }

  finish(): RankMetricsResult {
    const hasEvents = this.events > 0;
    const from = this.marker ?? (hasEvents ? this.first : 0);
    const to = hasEvents ? this.last : 0;
    const region = Math.max(0, to - from);

    const gpus: GpuActivity[] = [...this.gpus.entries()].sort((a, b) => a[0] - b[0]).map(([device, g]) => {
      const comm = g.comm.total(from, to);
      const commCompute = unionOf(g.comm, g.compute).total(from, to);
      const busy = unionOf(g.comm, g.compute, g.memory).total(from, to);
      return {
        device,
        busy_s: S(busy),
        busy_pct: pct(busy, region),
        idle_s: S(region - busy),
        kernels: g.kernels,
        activity_time_s: S(g.kernelNs + g.memcpyNs + g.memsetNs),
        kernel_time_s: S(g.kernelNs),
        memcpy_time_s: S(g.memcpyNs),
        memset_time_s: S(g.memsetNs),
        breakdown: { communication_s: S(comm), compute_s: S(commCompute - comm), memory_s: S(busy - commCompute), idle_s: S(region - busy) },
      };
    });

    // GPU collectives when the GPU shows any; otherwise the best CPU-side source (see cpuCollective).
    const cpuSource = this.cpuColl.findIndex((m) => m.size > 0);
    const useGpu = this.gpuColl.size > 0;
    const collMap = useGpu ? this.gpuColl : cpuSource >= 0 ? this.cpuColl[cpuSource] : new Map<string, CollAcc>();
    const gpuActivityNs = gpus.reduce((s, g) => s + g.activity_time_s * 1e9, 0);
    const collectives: CollectiveStat[] = [...collMap.entries()]
      .map(([kind, a]) => ({
        kind,
        label: a.label,
        side: useGpu ? ('gpu' as const) : ('cpu' as const),
        names: [...a.names].sort(),
        count: a.starts.length,
        time_s: S(a.ns),
        share_pct: useGpu ? pct(a.ns, gpuActivityNs) : pct(a.spans.total(from, to), region),
        share_of: useGpu ? ('gpu-activity' as const) : ('region' as const),
      }))
      .sort((a, b) => b.time_s - a.time_s);
    const calls: CollectiveCalls[] = [...collMap.entries()].map(([kind, a]) => ({
      kind,
      label: a.label,
      side: useGpu ? 'gpu' : 'cpu',
      starts: [...a.starts].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)),
    }));

    const allOps = unionOf(...this.threads.values());
    const collSet = cpuSource >= 0 ? unionOf(...[...this.cpuColl[cpuSource].values()].map((a) => a.spans)) : new IntervalSet();
    const opsAny = unionOf(allOps, collSet).total(from, to);
    const collAny = collSet.total(from, to);
    const cpu: CpuActivity = {
      op_time_s: S([...this.threads.values()].reduce((s, t) => s + t.total(from, to), 0)),
      threads: this.threads.size,
      breakdown: { collectives_s: S(collAny), other_ops_s: S(opsAny - collAny), idle_s: S(region - opsAny) },
    };

    const rows = (m: Map<string, Tally>) =>
      [...m.entries()].map(([name, t]) => ({ name, count: t.count, time_s: S(t.ns) })).sort((a, b) => b.count - a.count);
    const syncKinds = rows(this.syncs);
    const item = syncKinds.find((k) => k.name === 'aten::item');
    const headline = item ?? syncKinds[0];
    const launchRows = rows(this.launches);

    const modules: ModuleStat[] = [...this.modulesCpu.entries()]
      .map(([name, t]) => {
        const g = this.modulesGpu.get(name);
        return { name, count: t.count, cpu_time_s: S(t.ns), ...(g ? { gpu_time_s: S(g.ns) } : {}) };
      })
      .sort((a, b) => a.name.localeCompare(b.name));

    return {
      events: this.events,
      region_s: S(region),
      region_source: !hasEvents ? 'none' : this.marker !== null ? 'marker' : 'trace-span',
      regionStartNs: this.origin === null ? null : this.origin + BigInt(Math.round(from)),
      markerNs: this.origin === null || this.marker === null ? null : this.origin + BigInt(this.marker),
      firstNs: this.origin === null ? null : this.origin + BigInt(this.first),
      gpus,
      cpu,
      collectives,
      calls,
      syncs: { count: headline?.count ?? 0, headline: headline?.name ?? null, kinds: syncKinds },
      launches: {
        count: launchRows.reduce((s, r) => s + r.count, 0),
        time_s: launchRows.reduce((s, r) => s + r.time_s, 0),
        by_api: launchRows,
      },
      modules,
    };
  }
}

// Rewrites one rank's events into the unified timeline's namespace:
//   - pids: every (rank, source pid) gets its own numeric pid — Kineto's CPU process, each GPU device
//     (Kineto uses the device index as pid), string pids such as "Spans", "Traces" or legacy
//     "CPU functions" — named "rank R · CPU (host:pid)", "rank R · GPU d", … and ordered by rank;
//   - string tids become numbers (named by a thread_name event), negative ones (older Kineto) unsigned;
//   - flow ids (id, bind_id on s/t/f events: ac2g, fwdbwd) and the correlation ids in args
//     ("External id", "correlation") are offset by rank · 2^40, so no arrow or link crosses ranks;
//   - ts is shifted onto the timeline (µs from the start barrier's release, ns kept exactly).
// Everything else in an event is copied byte for byte. Metadata events ("M") are held until the rank
// ends (they are few, and Kineto writes them after the events), then written with the final names.
import { Span, type EventView } from './scan.js';
import { addUsNs, formatUs, parseUsBytes, type UsNs } from './time.js';
import { copyBytes, writeInt, writeUs, type TimelineWriter } from './writer.js';

const QUOTE = 0x22;
const PH_M = 0x4d;
/** ids are offset by rank · 2^40: unique for ids < 2^40 and ranks < 8192, and still exact doubles */
const ID_STRIDE = 2 ** 40;
/** the longest text a rewritten value can take (a ts, an id: under 24 digits and signs) */
const MAX_VALUE = 32;
/** numbers given to string tids (Kineto's "PyTorch Profiler" span thread…), above any OS tid */
const STRING_TID_BASE = 0x80000000;

/** Hands out timeline pids; shared by every rank of one merge. 1 is the "moe-run" process. */
export class PidAllocator {
  private next = 2;
  take(): number {
    return this.next++;
  }
}

export type ProcessKind = 'cpu' | 'gpu' | 'other';

interface Proc {
  pid: number;
  /** the source pid's JSON text: 4037, "Spans" */
  key: string;
  kind: ProcessKind;
  device?: number;
  hasName: boolean;
  hasSortIndex: boolean;
  /** string tid → number */
  tids: Map<string, number>;
}

export interface RankIdentity {
  rank: number;
  /** host of the rank, for the CPU process name */
  host?: string;
  /** the rank's OS pid (rank.json), names the legacy "CPU functions" process */
  osPid?: number;
}

/** ns → µs shift applied to every ts of the rank, as whole µs + ns (see time.ts). */
export type Shift = UsNs;

interface HeldMeta {
  obj: Record<string, unknown>;
  ts: UsNs | null;
}

export class RankRemap {
  private readonly procs = new Map<string, Proc>();
  /** numeric source pids, without making a string per event */
  private readonly byNumber = new Map<number, Proc>();
  private readonly held: HeldMeta[] = [];
  private readonly idOffset: number;
  private lastPidBuf: Buffer | null = null;
  private lastPidS = 0;
  private lastPidE = 0;
  private lastPid: Proc | null = null;
  private readonly t: UsNs = { us: 0, ns: 0 };
  /** events whose ts could not be read (kept unshifted) */
  badTs = 0;
  events = 0;
  /** earliest and latest event start written, on the timeline */
  minTs: UsNs | null = null;
  maxTs: UsNs | null = null;

  constructor(
    readonly id: RankIdentity,
    private readonly shift: Shift,
    private readonly pids: PidAllocator,
  ) {
    this.idOffset = id.rank * ID_STRIDE;
  }

  /** Writes one input event (or holds it, for "M"): its bytes, with the indexed fields rewritten. */
  write(v: EventView, w: TimelineWriter): void {
    this.events++;
    if (v.phCode === PH_M) {
      this.hold(v);
      return;
    }
    const buf = v.buf;
    const spans = v.spans;
    w.begin();
    // each rewritten value is at most MAX_VALUE bytes: room for the event in one go
    w.reserve(v.end - v.start + (v.spanLen / 3) * MAX_VALUE);
    let out = w.buf;
    let o = w.pos;
    let pos = v.start;
    for (let k = 0; k < v.spanLen; k += 3) {
      const kind = spans[k];
      const s = spans[k + 1];
      const e = spans[k + 2];
      const t = this.t;
      switch (kind) {
        case Span.Ts:
          if (!parseUsBytes(buf, s, e, t)) {
            this.badTs++;
            continue;
          }
          addUsNs(t, this.shift, t);
          this.track(t);
          o = copyBytes(out, o, buf, pos, s);
          o = writeUs(out, o, t.us, t.ns);
          break;
        case Span.Dur:
          // durations need no shift; only a quoted one is rewritten as a number
          if (buf[s] !== QUOTE || !parseUsBytes(buf, s, e, t)) continue;
          o = copyBytes(out, o, buf, pos, s);
          o = writeUs(out, o, t.us, t.ns);
          break;
        case Span.Pid:
          o = copyBytes(out, o, buf, pos, s);
          o = writeInt(out, o, this.procAt(buf, s, e).pid);
          break;
        case Span.Tid: {
          let tid: number;
          if (buf[s] === QUOTE) tid = this.stringTid(this.procForSpan(v), buf.toString('utf8', s, e));
          else if (buf[s] === 0x2d) tid = unsignedTid(Number(buf.toString('latin1', s, e)));
          else continue;
          o = copyBytes(out, o, buf, pos, s);
          o = writeInt(out, o, tid);
          break;
        }
        default: {
          // flow and correlation ids
          const id = this.offsetId(buf, s, e);
          o = copyBytes(out, o, buf, pos, s);
          if (typeof id === 'number') o = writeInt(out, o, id);
          else {
            // a string id (rare): through the writer, then room again for the rest of the event
            w.pos = o;
            w.ascii(id);
            w.reserve(v.end - e + (v.spanLen / 3) * MAX_VALUE);
            out = w.buf;
            o = w.pos;
          }
        }
      }
      pos = e;
    }
    w.pos = copyBytes(out, o, buf, pos, v.end);
  }

  /** The timeline pid of this rank's GPU `device` (created if its trace has none, e.g. for counters). */
  gpuPid(device: number): number {
    for (const p of this.procs.values()) if (p.kind === 'gpu' && p.device === device) return p.pid;
    const p = this.proc(`"moe-run GPU ${device}"`);
    p.kind = 'gpu';
    p.device = device;
    return p.pid;
  }

  /** The timeline pid of the rank's main CPU process (its OS pid's, else the first CPU one, else new). */
  cpuPid(): number {
    if (this.id.osPid !== undefined) {
      const p = this.procs.get(String(this.id.osPid));
      if (p) return p.pid;
    }
    for (const p of this.procs.values()) if (p.kind === 'cpu') return p.pid;
    const p = this.proc(this.id.osPid !== undefined ? String(this.id.osPid) : '"moe-run CPU"');
    p.kind = 'cpu';
    return p.pid;
  }

  /**
   * Writes the held metadata events with the final names and sort order, plus the names and sort
   * indexes that the trace did not have (marked cat "moe-run").
   */
  finish(w: TimelineWriter): void {
    for (const h of this.held) {
      const o = h.obj;
      const p = this.proc(JSON.stringify(o.pid));
      o.pid = p.pid;
      if (typeof o.tid === 'string') o.tid = this.stringTid(p, JSON.stringify(o.tid));
      else if (typeof o.tid === 'number') o.tid = unsignedTid(o.tid);
      if (o.name === 'process_name') {
        o.args = { ...(o.args as object), name: this.processName(p) };
        p.hasName = true;
      } else if (o.name === 'process_sort_index') {
        o.args = { ...(o.args as object), sort_index: this.sortIndex(p) };
        p.hasSortIndex = true;
      }
      writeWithTs(w, o, h.ts ? this.shifted(h.ts) : null);
    }
    for (const p of this.procs.values()) {
      if (!p.hasName) w.event({ ph: 'M', cat: 'moe-run', name: 'process_name', pid: p.pid, tid: 0, args: { name: this.processName(p) } });
      if (!p.hasSortIndex) w.event({ ph: 'M', cat: 'moe-run', name: 'process_sort_index', pid: p.pid, tid: 0, args: { sort_index: this.sortIndex(p) } });
      for (const [name, tid] of p.tids) {
        w.event({ ph: 'M', cat: 'moe-run', name: 'thread_name', pid: p.pid, tid, args: { name: JSON.parse(name) as string } });
      }
    }
  }

  /** Every timeline pid of this rank, with its kind (for the tests and the output metadata). */
  processes(): Array<{ pid: number; source: string; kind: ProcessKind; name: string }> {
    return [...this.procs.values()].map((p) => ({ pid: p.pid, source: p.key, kind: p.kind, name: this.processName(p) }));
  }

  private shifted(t: UsNs): UsNs {
    const r = { us: 0, ns: 0 };
    addUsNs(t, this.shift, r);
    return r;
  }

  private track(t: UsNs): void {
    if (!this.minTs || t.us < this.minTs.us || (t.us === this.minTs.us && t.ns < this.minTs.ns)) this.minTs = { us: t.us, ns: t.ns };
    if (!this.maxTs || t.us > this.maxTs.us || (t.us === this.maxTs.us && t.ns > this.maxTs.ns)) this.maxTs = { us: t.us, ns: t.ns };
  }

  private hold(v: EventView): void {
    let ts: UsNs | null = null;
    if (v.tsS >= 0) {
      const t = { us: 0, ns: 0 };
      if (parseUsBytes(v.buf, v.tsS, v.tsE, t)) ts = t;
    }
    const obj = JSON.parse(v.text()) as Record<string, unknown>;
    delete obj.ts; // written back exactly by writeWithTs
    this.held.push({ obj, ts });
    if (obj.name === 'process_labels') {
      // Kineto labels its processes "CPU" and "GPU d": which source pid is which device
      const labels = String((obj.args as { labels?: unknown } | undefined)?.labels ?? '');
      const m = /\bGPU (\d+)/.exec(labels);
      const p = this.proc(JSON.stringify(obj.pid));
      if (m) {
        p.kind = 'gpu';
        p.device = Number(m[1]);
      } else if (/\bCPU\b/.test(labels)) p.kind = 'cpu';
    }
  }

  /** Process of the pid span [s, e); consecutive events usually share it, so the last one is cached. */
  private procAt(buf: Buffer, s: number, e: number): Proc {
    const last = this.lastPidBuf;
    if (last && e - s === this.lastPidE - this.lastPidS) {
      let same = true;
      for (let k = 0; k < e - s; k++) {
        if (buf[s + k] !== last[this.lastPidS + k]) {
          same = false;
          break;
        }
      }
      if (same) return this.lastPid!;
    }
    let p: Proc | undefined;
    const n = buf[s] === QUOTE ? -1 : digitsValue(buf, s, e);
    if (n >= 0) {
      p = this.byNumber.get(n);
      if (!p) this.byNumber.set(n, (p = this.proc(String(n))));
    } else p = this.proc(buf.toString('utf8', s, e));
    this.lastPidBuf = buf;
    this.lastPidS = s;
    this.lastPidE = e;
    this.lastPid = p;
    return p;
  }

  private procForSpan(v: EventView): Proc {
    return v.pidS >= 0 ? this.procAt(v.buf, v.pidS, v.pidE) : this.proc('null');
  }

  private proc(key: string): Proc {
    let p = this.procs.get(key);
    if (!p) {
      const kind: ProcessKind = key === '"CPU functions"' ? 'cpu' : key.startsWith('"') ? 'other' : 'cpu';
      p = { pid: this.pids.take(), key, kind, hasName: false, hasSortIndex: false, tids: new Map() };
      this.procs.set(key, p);
    }
    return p;
  }

  private stringTid(p: Proc, key: string): number {
    let t = p.tids.get(key);
    if (t === undefined) {
      t = STRING_TID_BASE + p.tids.size;
      p.tids.set(key, t);
    }
    return t;
  }

  private processName(p: Proc): string {
    const r = `rank ${this.id.rank}`;
    if (p.kind === 'gpu') return `${r} · GPU ${p.device}`;
    if (p.kind === 'cpu') {
      const pid = /^\d+$/.test(p.key) ? Number(p.key) : this.id.osPid;
      if (pid === undefined) return `${r} · CPU`;
      return this.id.host ? `${r} · CPU (${this.id.host}:${pid})` : `${r} · CPU (pid ${pid})`;
    }
    const label = p.key.startsWith('"') ? (JSON.parse(p.key) as string) : p.key;
    return `${r} · ${label || 'markers'}`;
  }

  /** rank-major order; within a rank: CPU processes, GPUs by device, then the rest */
  private sortIndex(p: Proc): number {
    const within = p.kind === 'cpu' ? 0 : p.kind === 'gpu' ? 100 + (p.device ?? 0) : 900;
    return (this.id.rank + 1) * 1000 + within;
  }

  /** A flow or correlation id moved into this rank's range: a number, or a string for string ids. */
  private offsetId(buf: Buffer, s: number, e: number): number | string {
    let n = 0;
    let k = s;
    for (; k < e; k++) {
      const d = buf[k] - 0x30;
      if (d < 0 || d > 9) break;
      n = n * 10 + d;
    }
    if (k === e && k > s && n < ID_STRIDE) return n + this.idOffset;
    // a string id, or one too large to offset exactly: a string unique to the rank
    const raw = buf[s] === QUOTE ? (JSON.parse(buf.toString('utf8', s, e)) as string) : buf.toString('utf8', s, e);
    return JSON.stringify(`rank${this.id.rank}:${raw}`);
  }
}

/** The value of an unsigned integer written in bytes [s, e), or -1 if the text is anything else. */
function digitsValue(buf: Buffer, s: number, e: number): number {
  if (e - s > 15 || e === s) return -1;
  let n = 0;
  for (let k = s; k < e; k++) {
    const d = buf[k] - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Older Kineto wrote some thread ids as negative int32s; viewers take tids as uint32, so a negative
 * one becomes the same 32 bits read unsigned (unique, and what the OS id was).
 */
function unsignedTid(tid: number): number {
  return tid < 0 && tid >= -(2 ** 31) ? tid + 2 ** 32 : tid;
}

/** Writes a parsed event whose exact ts was taken out of it: `{"ts":…,` + the rest. */
export function writeWithTs(w: TimelineWriter, obj: Record<string, unknown>, ts: UsNs | null): void {
  const rest = JSON.stringify(obj);
  w.begin();
  if (!ts) w.ascii(rest);
  else w.ascii(`{"ts":${formatUs(ts.us, ts.ns)}${rest.length > 2 ? ',' : ''}${rest.slice(1)}`);
}

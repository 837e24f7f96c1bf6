// Test helpers for the timeline: a strict Trace Event Format validator, an independent exact-time
// parser (BigInt on the raw decimal text), and plain whole-file reading (JSON.parse) of inputs and
// outputs — the independent side every merge test compares against.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const HTA = join(REPO, '..', 'shared', 'traces', 'hta');

export type Ev = Record<string, any>;

/** The real traces in shared/, by short name. */
export const REAL = {
  rank0: join(HTA, 'trace_filter', 'sampled_rank-0.json.gz'),
  rank1: join(HTA, 'trace_filter', 'sampled_rank-1.json.gz'),
  nccl: join(HTA, 'nccl_parser_config', 'nccl_data.json.gz'),
  cpuOnly: join(HTA, 'cpu_only', 'rank-34.Jul_15_10_52_41.1074.pt.trace.json.gz'),
  nsResolution: join(HTA, 'ns_resolution_trace', 'rank-0.Apr_03_18_51_38.1102.pt.trace.json.gz'),
  oldCategories: join(HTA, 'trace_file_list', 'inference_rank_1.json.gz'),
  amd: join(HTA, 'amd_trace', 'mi250_minitoy_train_ROCm6_2_kineto.json.gz'),
  triton: join(HTA, 'triton_example', 'triton_example.json.gz'),
  rankUnavailable: join(HTA, 'rank_unavailable', 'rank_not_found.json.gz'),
  noDistributedInfo: join(HTA, 'distributed_info_unavailable', 'distributed_info_not_found.json.gz'),
};

export function readText(path: string): string {
  const raw = readFileSync(path);
  return (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString('utf8');
}

/** A trace (either form) read whole: its events, the top-level object (if any) and its raw text. */
export function loadWhole(path: string): { events: Ev[]; doc: Ev | null; text: string } {
  const text = readText(path);
  const doc = JSON.parse(text);
  return Array.isArray(doc) ? { events: doc, doc: null, text } : { events: doc.traceEvents, doc, text };
}

/**
 * The raw text of every top-level "ts" value, in document order. Valid for documents where ts occurs
 * only as an event key (true of every trace here; checked by callers against the parsed count).
 */
export function rawTs(text: string): string[] {
  return [...text.matchAll(/"ts"\s*:\s*"?(-?[0-9][0-9.eE+-]*)"?/g)].map((m) => m[1]);
}

/** Decimal µs text → exact integer ns (≤ 3 decimals, as traces write; more is a test failure). */
export function usToNs(text: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d{0,3}))?$/.exec(text);
  if (!m) throw new Error(`not a µs decimal with ≤ 3 decimals: ${text}`);
  const ns = BigInt(m[2]) * 1000n + BigInt((m[3] ?? '').padEnd(3, '0'));
  return m[1] ? -ns : ns;
}

const PHASES = new Set(['B', 'E', 'X', 'i', 'I', 'C', 'b', 'n', 'e', 's', 't', 'f', 'P', 'N', 'O', 'D', 'M', 'V', 'v', 'R', 'c']);
const META_NAMES: Record<string, [string, 'string' | 'integer']> = {
  process_name: ['name', 'string'],
  process_labels: ['labels', 'string'],
  process_sort_index: ['sort_index', 'integer'],
  thread_name: ['name', 'string'],
  thread_sort_index: ['sort_index', 'integer'],
};

const isU32 = (x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 32;

/**
 * Strict check of a merged timeline (the output's conventions, stricter than viewers): numeric pids
 * and tids, ts a finite number on every event but metadata, phase-specific fields, B/E balanced per
 * thread. Returns the problems (empty when valid), at most `limit`.
 */
export function validateTimeline(doc: unknown, limit = 20): string[] {
  const problems: string[] = [];
  const bad = (i: number, e: Ev, why: string) => {
    if (problems.length < limit) problems.push(`event ${i} (${JSON.stringify(e).slice(0, 160)}): ${why}`);
  };
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return ['not a JSON object (object form expected)'];
  const d = doc as Ev;
  if (!Array.isArray(d.traceEvents)) return ['traceEvents is not an array'];
  if (d.displayTimeUnit !== undefined && d.displayTimeUnit !== 'ms' && d.displayTimeUnit !== 'ns') problems.push(`displayTimeUnit ${d.displayTimeUnit}`);
  const stacks = new Map<string, number[]>();
  const begins: Array<{ key: string; ts: number; ph: string; i: number }> = [];
  d.traceEvents.forEach((e: Ev, i: number) => {
    if (!e || typeof e !== 'object' || Array.isArray(e)) return bad(i, e, 'not an object');
    if (typeof e.ph !== 'string' || !PHASES.has(e.ph)) return bad(i, e, `unknown phase ${e.ph}`);
    if (typeof e.name !== 'string') bad(i, e, 'name is not a string');
    if (!isU32(e.pid)) bad(i, e, `pid ${JSON.stringify(e.pid)} is not a uint32`);
    if (e.tid !== undefined && !isU32(e.tid)) bad(i, e, `tid ${JSON.stringify(e.tid)} is not a uint32`);
    if (e.ph !== 'M' && e.tid === undefined) bad(i, e, 'no tid');
    if (e.cat !== undefined && typeof e.cat !== 'string') bad(i, e, 'cat is not a string');
    if (e.args !== undefined && (typeof e.args !== 'object' || e.args === null || Array.isArray(e.args))) bad(i, e, 'args is not an object');
    if (e.ph === 'M') {
      const spec = META_NAMES[e.name];
      if (!spec) return bad(i, e, `unknown metadata event ${e.name}`);
      const v = e.args?.[spec[0]];
      if (spec[1] === 'string' ? typeof v !== 'string' : !Number.isInteger(v)) bad(i, e, `args.${spec[0]} must be ${spec[1]}`);
      if (e.ts !== undefined && !Number.isFinite(e.ts)) bad(i, e, 'ts is not a finite number');
      return;
    }
    if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) return bad(i, e, 'ts is not a finite number');
    switch (e.ph) {
      case 'X':
        if (typeof e.dur !== 'number' || !(e.dur >= 0)) bad(i, e, 'X without a dur ≥ 0');
        break;
      case 'B':
      case 'E':
        begins.push({ key: `${e.pid}/${e.tid}`, ts: e.ts, ph: e.ph, i });
        break;
      case 'C':
        if (!e.args || Object.keys(e.args).length === 0) bad(i, e, 'counter without values');
        for (const [k, v] of Object.entries(e.args ?? {})) if (typeof v !== 'number' || !Number.isFinite(v)) bad(i, e, `counter value ${k} is not a number`);
        break;
      case 's':
      case 't':
      case 'f':
        if (typeof e.id !== 'number' && typeof e.id !== 'string') bad(i, e, 'flow event without id');
        if (e.bp !== undefined && e.bp !== 'e') bad(i, e, `bp ${e.bp}`);
        break;
      case 'i':
      case 'I':
        if (e.s !== undefined && !['g', 'p', 't'].includes(e.s)) bad(i, e, `instant scope ${e.s}`);
        break;
      case 'b':
      case 'n':
      case 'e':
        if (e.id === undefined && e.id2 === undefined) bad(i, e, 'async event without id');
        break;
    }
  });
  // B/E: in time order per thread (E before B at equal ts closes first), never below zero, zero at the end
  begins.sort((a, b) => a.ts - b.ts || (a.ph === 'E' ? -1 : 1) - (b.ph === 'E' ? -1 : 1));
  for (const b of begins) {
    const st = stacks.get(b.key) ?? [];
    if (b.ph === 'B') st.push(b.i);
    else if (st.pop() === undefined) problems.push(`event ${b.i}: E without a B on ${b.key}`);
    stacks.set(b.key, st);
  }
  for (const [key, st] of stacks) if (st.length) problems.push(`${st.length} B without an E on ${key}`);
  return problems.slice(0, limit);
}

/** Output events that came from inputs (the merge marks what it adds with cat "moe-run"). */
export const fromInput = (e: Ev) => e.cat !== 'moe-run';

export function countBy<T>(items: T[], key: (x: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of items) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return m;
}

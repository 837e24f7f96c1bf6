// Clock alignment: how a rank's trace times map onto the unified timeline, i.e. ns on the reference
// clock (node 0's launcher) counted from the timeline's zero (the start barrier's release).
// Every method yields one shift: timeline_ns = file_ns + shiftNs, where file_ns is an event's ts in
// its file's own time base (see reader.ts). Best first:
//   anchors         rank.json: the moe_run/start marker's local wall-clock ns and its ts in the trace,
//                   plus the rank's clock offset (docs/contracts.md, "rank.json").
//   marker          the same, with the marker's ts found in the trace (rank.json lacks start_marker_trace_us).
//   absolute        the trace's own epoch time (Kineto: baseTimeNanoseconds + ts, or epoch-µs ts), plus
//                   the rank's clock offset when known.
//   profiler-start  legacy traces (ts relative to the profiler start) with rank.json's profiler start.
//   first-event     nothing else: the trace's earliest event is put at the timeline's zero (or at the
//                   earliest event of the other inputs); its position is a guess and the output says so.
import type { RankInfo } from '../run-dir.js';
import { absoluteNs, type TraceMeta } from './reader.js';
import { parseUsText, toNs, type UsNs } from './time.js';

export type AlignMethod = 'anchors' | 'marker' | 'absolute' | 'profiler-start' | 'first-event';

export interface Alignment {
  method: AlignMethod;
  /** timeline_ns = file_ns + shiftNs */
  shiftNs: bigint;
  /** reference − local clock of the rank (0 when unknown) */
  clockOffsetNs: bigint;
  detail: string;
}

/** The marker range the bootstrap records right after the start barrier (patches/). */
export const START_MARKER = 'moe_run/start';

function decimalNs(text: string | undefined): bigint | null {
  if (text === undefined || !/^-?\d+$/.test(text.trim())) return null;
  return BigInt(text.trim());
}

function usTextToNs(text: string | undefined): bigint | null {
  if (text === undefined) return null;
  const t: UsNs = { us: 0, ns: 0 };
  return parseUsText(text, t) ? toNs(t) : null;
}

export function clockOffsetOf(info: RankInfo | null): bigint {
  return decimalNs(info?.clock_offset_ns) ?? 0n;
}

/**
 * From rank.json's marker anchors; `markerFileNs` is the marker's ts found in the trace, used when
 * rank.json has no start_marker_trace_us. Null when the rank has no marker anchor.
 */
export function alignFromAnchors(info: RankInfo, zeroNs: bigint, markerFileNs?: bigint | null): Alignment | null {
  const local = decimalNs(info.anchors?.start_marker_local_ns);
  if (local === null) return null;
  const fromJson = usTextToNs(info.anchors.start_marker_trace_us);
  const trace = fromJson ?? markerFileNs ?? null;
  if (trace === null) return null;
  const offset = clockOffsetOf(info);
  return {
    method: fromJson !== null ? 'anchors' : 'marker',
    shiftNs: local + offset - zeroNs - trace,
    clockOffsetNs: offset,
    detail:
      `${START_MARKER} at local ${local} ns = trace ${fromJson !== null ? 'ts (rank.json)' : 'ts found in the trace'} ` +
      `${trace} ns; clock offset ${offset} ns`,
  };
}

/** From the trace's own epoch time (null for traces without one, e.g. legacy). */
export function alignAbsolute(meta: TraceMeta, minFileNs: bigint, clockOffsetNs: bigint, zeroNs: bigint): Alignment | null {
  const abs = absoluteNs(meta, minFileNs);
  if (abs === null) return null;
  const base = abs - minFileNs; // baseTimeNanoseconds, or 0 for epoch-µs traces
  return {
    method: 'absolute',
    shiftNs: base + clockOffsetNs - zeroNs,
    clockOffsetNs,
    detail:
      (meta.baseTimeNs !== undefined ? `baseTimeNanoseconds ${meta.baseTimeNs} + ts` : 'epoch-µs ts') +
      (clockOffsetNs !== 0n ? `; clock offset ${clockOffsetNs} ns` : '; no clock offset'),
  };
}

/** Legacy traces: ts counts from the profiler's start, which rank.json records on the local clock. */
export function alignProfilerStart(info: RankInfo, zeroNs: bigint): Alignment | null {
  const start = decimalNs(info.anchors?.profiler_start_local_ns);
  if (start === null) return null;
  const offset = clockOffsetOf(info);
  return {
    method: 'profiler-start',
    shiftNs: start + offset - zeroNs,
    clockOffsetNs: offset,
    detail: `ts 0 taken as the profiler start, local ${start} ns; clock offset ${offset} ns (approximate)`,
  };
}

/** Puts the trace's earliest event at timeline ns `atNs`. */
export function alignFirstEvent(minFileNs: bigint, atNs = 0n): Alignment {
  return {
    method: 'first-event',
    shiftNs: atNs - minFileNs,
    clockOffsetNs: 0n,
    detail: `no clock information: the earliest event is placed at ${atNs} ns`,
  };
}

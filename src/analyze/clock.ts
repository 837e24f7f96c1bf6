// Puts a rank's trace times on the reference clock (node 0's launcher), as docs/contracts.md defines:
// reference_ns(ts) = start_marker_local_ns + (ts − start_marker_trace_us)·1000 + clock_offset_ns.
// Without anchors, a trace with absolute times (Kineto epoch µs or baseTimeNanoseconds) is placed by
// those plus the clock offset; a legacy trace without anchors (relative times) cannot be placed.
import type { RankInfo } from '../run-dir.js';
import { absoluteNs, type TraceMeta } from '../trace/reader.js';
import { parseUsText, toNs, type UsNs } from '../trace/time.js';

export interface RankClock {
  /** placed by the moe_run/start anchors of rank.json (else by the trace's own absolute times) */
  anchored: boolean;
  /** file-time-base ns → reference clock epoch ns, or null when the trace cannot be placed */
  toReference(tsNs: bigint): bigint | null;
}

function bigintOr(text: string | undefined, fallback: bigint): bigint {
  return text !== undefined && /^-?\d+$/.test(text) ? BigInt(text) : fallback;
}

export function rankClock(info: RankInfo | null, meta: TraceMeta): RankClock {
  const offset = bigintOr(info?.clock_offset_ns, 0n);
  const a = info?.anchors;
  const markerUs: UsNs = { us: 0, ns: 0 };
  if (a?.start_marker_local_ns && a.start_marker_trace_us && parseUsText(a.start_marker_trace_us, markerUs)) {
    const local = BigInt(a.start_marker_local_ns);
    const marker = toNs(markerUs);
    return { anchored: true, toReference: (ts) => local + (ts - marker) + offset };
  }
  return {
    anchored: false,
    toReference: (ts) => {
      const abs = absoluteNs(meta, ts);
      return abs === null ? null : abs + offset;
    },
  };
}

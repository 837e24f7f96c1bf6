// Which of the trace stage's alignments (src/trace/align.ts, the merge's) puts a rank's trace on the
// reference clock, so that the analysis and the timeline agree. The skew needs real clock positions,
// so align.ts's last resort (first event at zero: a guess) is not used here; such a rank is left out
// of the cross-rank comparison.
import type { RankInfo } from '../run-dir.js';
import { alignAbsolute, alignFromAnchors, alignProfilerStart, clockOffsetOf, type Alignment } from '../trace/align.js';
import type { TraceMeta } from '../trace/reader.js';

/**
 * The alignment of a trace, best method first; `markerNs` / `firstNs` are the moe_run/start marker's
 * and the earliest event's ts in the file's time base. With zero 0, reference ns = file ns + shiftNs.
 */
export function rankAlignment(info: RankInfo | null, meta: TraceMeta, markerNs: bigint | null, firstNs: bigint | null): Alignment | null {
  return (
    (info ? alignFromAnchors(info, 0n, markerNs) : null) ??
    (firstNs !== null ? alignAbsolute(meta, firstNs, clockOffsetOf(info), 0n) : null) ??
    (info ? alignProfilerStart(info, 0n) : null)
  );
}

// Feeds a rank's trace to the metrics through the trace stage's streaming scanner (the merge's reader):
// the file is read once, chunk by chunk, and only complete ("X") events are decoded, and of those only
// the fields the metrics read. Nothing of the trace is kept, so memory does not grow with its size.
import { scanTrace, type TraceMeta } from '../trace/reader.js';
import { parseUsBytes, toNs, type UsNs } from '../trace/time.js';
import type { EventView } from '../trace/scan.js';
import type { MetricEvent } from './rank-metrics.js';

const PH_X = 0x58;
const t: UsNs = { us: 0, ns: 0 };

function ns(v: EventView, s: number, e: number): bigint | null {
  return s >= 0 && parseUsBytes(v.buf, s, e, t) ? toNs(t) : null;
}

/** pid/tid as written: numbers stay numbers (GPU pids are device indexes), strings stay strings. */
function id(v: EventView, s: number, e: number): number | string {
  const raw = v.raw(s, e);
  if (raw === null) return '';
  const n = Number(raw);
  return Number.isFinite(n) ? n : (v.str(s, e) ?? '');
}

/**
 * Calls `visit` for each complete event of the trace; resolves with the file's metadata and the
 * reader's warnings (a truncated file still yields its complete events).
 */
export async function scanCompleteEvents(
  path: string,
  visit: (ev: MetricEvent) => void,
): Promise<{ meta: TraceMeta; warnings: string[] }> {
  return scanTrace(path, (v) => {
    if (v.phCode !== PH_X) return;
    const tsNs = ns(v, v.tsS, v.tsE);
    if (tsNs === null) return;
    const name = v.str(v.nameS, v.nameE) ?? '';
    // Only record_param_comms needs its arguments (the collective's name); parsing args of every
    // event would cost more than the rest of the pass.
    const args = name === 'record_param_comms' && v.argsS >= 0
      ? (JSON.parse(v.raw(v.argsS, v.argsE) as string) as Record<string, unknown>)
      : undefined;
    visit({
      ph: 'X',
      name,
      cat: v.str(v.catS, v.catE) ?? undefined,
      pid: id(v, v.pidS, v.pidE),
      tid: id(v, v.tidS, v.tidE),
      tsNs,
      durNs: ns(v, v.durS, v.durE) ?? 0n,
      args,
    });
  });
}

// Arrival skew of collectives across ranks. A collective finishes only when every rank has joined,
// so the k-th call of a kind on each rank is one call: the rank that starts it last makes the
// others wait. Calls are matched by order per kind (ranks run the same program, so they issue the same
// sequence); when counts differ, only the common prefix is matched.
import { mean, percentile } from './samples.js';
import type { CollectiveSkew } from './summary.js';

/** One rank's calls of one kind, starts on the aligned (reference) clock, ns, sorted. */
export interface AlignedCalls {
  rank: number;
  kind: string;
  label: string;
  side: 'gpu' | 'cpu';
  starts: bigint[];
}

const BINS = 20;

function histogram(values: number[]): { edges_ms: number[]; counts: number[] } {
  if (!values.length) return { edges_ms: [], counts: [] };
  const top = Math.max(values.reduce((a, b) => (b > a ? b : a)), 1e-6);
  const width = top / BINS;
  const edges = Array.from({ length: BINS + 1 }, (_, i) => i * width);
  const counts = new Array<number>(BINS).fill(0);
  for (const v of values) counts[Math.min(BINS - 1, Math.floor(v / width))] += 1;
  return { edges_ms: edges, counts };
}

export function collectiveSkew(all: AlignedCalls[]): CollectiveSkew[] {
  const byKind = new Map<string, AlignedCalls[]>();
  for (const c of all) {
    const key = `${c.side}:${c.kind}`;
    byKind.set(key, [...(byKind.get(key) ?? []), c]);
  }
  const out: CollectiveSkew[] = [];
  for (const calls of byKind.values()) {
    if (calls.length < 2) continue; // skew needs two ranks
    calls.sort((a, b) => a.rank - b.rank);
    const matched = Math.min(...calls.map((c) => c.starts.length));
    const skews: number[] = [];
    const wait = new Map<number, number>(calls.map((c) => [c.rank, 0]));
    const last = new Map<number, number>(calls.map((c) => [c.rank, 0]));
    const behindWhenLast = new Map<number, number[]>(calls.map((c) => [c.rank, []]));
    for (let k = 0; k < matched; k++) {
      let first = calls[0].starts[k];
      let lastStart = first;
      let lastRank = calls[0].rank;
      for (const c of calls) {
        const s = c.starts[k];
        if (s < first) first = s;
        if (s > lastStart) {
          lastStart = s;
          lastRank = c.rank;
        }
      }
      const skewMs = Number(lastStart - first) / 1e6;
      skews.push(skewMs);
      for (const c of calls) wait.set(c.rank, (wait.get(c.rank) ?? 0) + Number(lastStart - c.starts[k]) / 1e9);
      // a call where everyone started together has no straggler
      if (lastStart > first) {
        last.set(lastRank, (last.get(lastRank) ?? 0) + 1);
        behindWhenLast.get(lastRank)!.push(skewMs);
      }
    }
    let straggler: CollectiveSkew['straggler'];
    for (const [rank, n] of last) {
      if (n > 0 && (!straggler || n > (last.get(straggler.rank) ?? 0))) {
        straggler = { rank, share_pct: (100 * n) / matched, mean_behind_ms: mean(behindWhenLast.get(rank)!) ?? 0 };
      }
    }
    const rec = (m: Map<number, number>) => Object.fromEntries([...m].map(([r, v]) => [String(r), v]));
    out.push({
      kind: calls[0].kind,
      label: calls[0].label,
      side: calls[0].side,
      ranks: calls.map((c) => c.rank),
      calls_per_rank: Object.fromEntries(calls.map((c) => [String(c.rank), c.starts.length])),
      matched_calls: matched,
      skew_ms: {
        mean: mean(skews) ?? 0,
        p50: percentile(skews, 50) ?? 0,
        p95: percentile(skews, 95) ?? 0,
        max: skews.reduce((a, b) => (b > a ? b : a), 0),
      },
      wait_total_s: [...wait.values()].reduce((a, b) => a + b, 0),
      wait_per_rank_s: rec(wait),
      last_arrivals: rec(last),
      ...(straggler ? { straggler } : {}),
      histogram: histogram(skews),
    });
  }
  return out.sort((a, b) => b.wait_total_s - a.wait_total_s);
}

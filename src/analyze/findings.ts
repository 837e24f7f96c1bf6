// The findings: a few plain sentences that answer the questions the seed's team asked by hand —
// which collective dominates, who makes the others wait, whether the GPUs idle on CPU syncs, whether
// the run is CPU- or GPU-bound. Every number comes from the summary; a sentence is left out when the
// data for it is missing.
import { count, duration, num, percent, percentRange } from './format.js';
import type { CollectiveStat, Summary } from './summary.js';

type Body = Omit<Summary, 'findings'>;

const plural = (n: number, one: string, many = `${one}s`) => `${count(n)} ${n === 1 ? one : many}`;

function dominantCollective(s: Body): string | null {
  const traced = s.ranks.filter((r) => r.events > 0);
  if (!traced.length) return null;
  const top = traced.map((r) => r.collectives[0] as CollectiveStat | undefined);
  const first = top[0];
  if (!first) return null;
  const of = first.share_of === 'gpu-activity' ? 'of GPU time' : 'of the region\'s wall time';
  if (top.every((c) => c && c.kind === first.kind && c.side === first.side)) {
    const shares = top.map((c) => c!.share_pct);
    const calls = plural(top.reduce((n, c) => n + c!.count, 0), 'call');
    const each = traced.map((r, i) => `rank ${r.rank} ${percent(shares[i])}`).join(', ');
    if (traced.length === 1) return `${first.label} takes ${percent(shares[0])} ${of} on rank ${traced[0].rank}, ${calls}.`;
    const lo = Math.min(...shares);
    const hi = Math.max(...shares);
    // within 10 points the ranks tell one story; further apart, which rank spends more is the news
    return hi - lo <= 10
      ? `${first.label} takes ${percentRange(lo, hi)} ${of} on every rank (${each}), ${calls} in all.`
      : `${first.label} is the heaviest collective on every rank, but its share ${of} differs: ${each} (${calls} in all).`;
  }
  return `The heaviest collective differs by rank: ${traced
    .map((r, i) => (top[i] ? `rank ${r.rank}: ${top[i]!.label} ${percent(top[i]!.share_pct)}` : `rank ${r.rank}: none`))
    .join('; ')}.`;
}

function straggler(s: Body): string | null {
  const c = s.collectives.find((x) => x.straggler && x.matched_calls > 0);
  if (!c || !c.straggler) return null;
  const { rank, share_pct, mean_behind_ms } = c.straggler;
  return `Rank ${rank} arrives last at ${percent(share_pct)} of ${c.matched_calls} matched ${c.label} calls, ` +
    `${duration(mean_behind_ms / 1e3)} behind the first rank on average; the ranks wait ${duration(c.wait_total_s)} in all ` +
    `(skew p50 ${duration(c.skew_ms.p50 / 1e3)}, p95 ${duration(c.skew_ms.p95 / 1e3)}).`;
}

function syncs(s: Body): string | null {
  const gpuRanks = s.ranks.filter((r) => r.gpus.length > 0);
  if (!gpuRanks.length) return null;
  const total = gpuRanks.reduce((n, r) => n + r.syncs.count, 0);
  const head = gpuRanks.find((r) => r.syncs.headline)?.syncs.headline;
  const gpus = gpuRanks.flatMap((r) => r.gpus);
  const idle = gpus.reduce((a, g) => a + (100 - g.busy_pct), 0) / gpus.length;
  const launches = gpuRanks.reduce((n, r) => n + r.launches.count, 0);
  const syncText = head ? `${plural(total, 'CPU-GPU sync')} (${head})` : 'No CPU-GPU syncs';
  const together = gpuRanks.length > 1 ? ` on ${gpuRanks.length} ranks together` : '';
  return `${syncText} and ${plural(launches, 'kernel launch', 'kernel launches')}${together}: ` +
    `the GPUs idle ${percent(idle)} of the region on average${gpus.length > 1 ? ` (${gpus.length} GPUs)` : ''}.`;
}

function bound(s: Body): string | null {
  const traced = s.ranks.filter((r) => r.events > 0);
  if (!traced.length) return null;
  const cpu = traced.reduce((a, r) => a + r.cpu.op_time_s, 0);
  const gpu = traced.reduce((a, r) => a + r.gpus.reduce((b, g) => b + g.busy_s, 0), 0);
  if (gpu === 0) {
    const region = traced.reduce((a, r) => a + r.region_s, 0);
    const coll = traced.reduce((a, r) => a + r.cpu.breakdown.collectives_s, 0);
    return `No GPU activity in the traces (a CPU run): the ranks are inside an operator ${percent((100 * cpu) / region)} of the region's wall time` +
      `${coll > 0 ? `, inside a collective ${percent((100 * coll) / region)}` : ''} (all ranks together).`;
  }
  const launch = traced.reduce((a, r) => a + r.launches.time_s, 0);
  const ratio = cpu / gpu;
  // within 25% either way neither side clearly holds the other up
  const kind = ratio > 1.25 ? 'CPU-bound' : ratio < 0.8 ? 'GPU-bound' : 'Neither clearly CPU- nor GPU-bound';
  return `${kind}: the CPUs spent ${duration(cpu)} in operators to the GPUs' ${duration(gpu)} busy ` +
    `(${num(ratio)}×)${launch > 0 ? `; kernel launch calls alone took ${duration(launch)}` : ''}.`;
}

function moeVsDense(s: Body): string | null {
  const per = (suffix: string) => {
    const ms = s.ranks.flatMap((r) => r.modules.filter((m) => m.name.endsWith(suffix)));
    const n = ms.reduce((a, m) => a + m.count, 0);
    return n ? ms.reduce((a, m) => a + (m.gpu_time_s ?? m.cpu_time_s), 0) / n : null;
  };
  const moe = per(' with MoE');
  const dense = per(' without MoE');
  if (moe === null || dense === null || dense === 0) return null;
  return `A layer with MoE takes ${duration(moe)} per call, one without MoE ${duration(dense)} (${num(moe / dense)}×).`;
}

function throughput(s: Body): string | null {
  const r = s.ranks.filter((x) => x.tokens_per_s !== undefined);
  if (!r.length) return null;
  const sum = r.reduce((a, x) => a + (x.tokens_per_s ?? 0), 0);
  const ppl = r.find((x) => x.perplexity !== undefined);
  return `Throughput ${num(sum)} tokens/s summed over ${plural(r.length, 'rank')}` +
    `${ppl ? `; perplexity ${num(ppl.perplexity)} (rank ${ppl.rank})` : ''}.`;
}

function counters(s: Body): string | null {
  const g = s.gpu_counters.filter((x) => x.samples > 0);
  if (!g.length) return null;
  const util = g.map((x) => x.util_mean_pct).filter((v): v is number => v !== undefined);
  const peak = g.map((x) => x.mem_peak_mib).filter((v): v is number => v !== undefined);
  const power = g.map((x) => x.power_mean_w).filter((v): v is number => v !== undefined);
  const parts = [
    util.length ? `utilisation ${percent(util.reduce((a, b) => a + b, 0) / util.length)} on average` : null,
    peak.length ? `peak memory ${count(Math.max(...peak))} MiB` : null,
    power.length ? `mean power ${num(power.reduce((a, b) => a + b, 0) / power.length)} W per GPU` : null,
  ].filter(Boolean);
  return parts.length ? `nvidia-smi over the region (${plural(g.length, 'GPU')}): ${parts.join(', ')}.` : null;
}

function processes(s: Body): string | null {
  const p = s.process_counters.filter((x) => x.samples > 0 && x.cpu_mean_pct !== undefined);
  if (!p.length) return null;
  const peak = Math.max(...p.map((x) => x.rss_peak_bytes ?? 0));
  return `Rank processes over the region: ${p.map((x) => `rank ${x.rank} ${percent(x.cpu_mean_pct!)}`).join(', ')} CPU on average ` +
    `(100% = one core)${peak > 0 ? `, peak RSS ${count(peak / 2 ** 20)} MiB` : ''}.`;
}

function failures(s: Body): string[] {
  const out = s.ranks
    .filter((r) => r.status === 'failed')
    .map((r) => `Rank ${r.rank} failed${r.reason ? `: ${r.reason}` : ''}.`);
  if (s.run.status !== 'ok' && s.run.failure && !out.length) out.push(`The run ${s.run.status}: ${s.run.failure}.`);
  return out;
}

export function findings(s: Body): string[] {
  return [
    ...failures(s),
    dominantCollective(s),
    straggler(s),
    syncs(s),
    bound(s),
    moeVsDense(s),
    throughput(s),
    counters(s),
    processes(s),
  ].filter((x): x is string => x !== null);
}

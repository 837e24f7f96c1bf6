// Start-barrier skew and clock-offset error (issue 3), with real ranks on real sockets: each run starts a
// RendezvousServer for 4 ranks in this process and 4 processes of the bootstrap around bench/rdzv-rank.py
// (a region that does next to nothing), then reads the ranks' rank.json.
//
// - marker spread: max − min over the ranks of the moe_run/start marker on the reference clock
//   (start_marker_local_ns + clock_offset_ns); the markers are what the timeline aligns on.
// - release spread: the same for barrier_release_local_ns, the moment each rank heard the release; how
//   late a rank hears it depends on the scheduler, which is why the marker waits for release + 50 ms.
// - clock-offset error: every other run injects a known skew into two ranks' clocks
//   (MOE_RUN_TEST_CLOCK_SKEW_NS); the offset a rank measured should be −skew, plus however far the
//   reference clock itself reads from the system clock (see referenceMinusSystem).
//
// Four ranks on a machine with fewer cores preempt each other; the note says the load average.
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile } from '../src/analyze/samples.js';
import type { ReferenceClock } from '../src/launch/clock.js';
import { RendezvousServer } from '../src/launch/rendezvous.js';
import { bootstrapPath, repoRoot } from '../src/plan/repo.js';
import { RunDir, type RankInfo } from '../src/run-dir.js';
import type { BenchResult } from './types.js';

const RANKS = 4;
const RUNS = Number(process.env.MOE_RUN_BENCH_RDZV_RUNS ?? 10);
const PYTHON = process.env.MOE_RUN_PYTHON ?? '/usr/bin/python3';
const WORKLOAD = join(repoRoot, 'bench', 'rdzv-rank.py');
const PROFILE = JSON.stringify({ enabled: true, activities: ['cpu'], region: '__main__:work' });
/** rank → injected clock skew in the skewed runs: one rank ahead, one behind, two exact */
const SKEWS_NS = [0n, 5_000_000_000n, -3_000_000_000n, 0n];
const NO_SKEW = SKEWS_NS.map(() => 0n);
const TARGET = '≤ 1 ms';

interface RunFigures {
  markerSpreadNs: bigint;
  releaseSpreadNs: bigint;
  /** |measured offset − expected| per rank */
  offsetErrorsNs: bigint[];
  /** ranks that heard the release after the marker's time, so recorded it late */
  lateMarkers: number;
}

/**
 * How far the reference clock reads ahead of the system clock the ranks read (negative: behind).
 * ReferenceClock starts from Date.now(), whole milliseconds, so it is up to 1 ms behind; that shifts
 * every rank's offset alike and does not matter to the alignment, but it does to "offset = −skew".
 * At the instant Date.now() ticks over, the system clock reads that millisecond exactly; a reading
 * preempted between the two calls is off, hence the median of several ticks.
 */
function referenceMinusSystem(clock: ReferenceClock): bigint {
  const diffs: bigint[] = [];
  for (let i = 0; i < 9; i++) {
    const last = Date.now();
    let now = last;
    while (now === last) now = Date.now();
    diffs.push(clock.nowNs() - BigInt(now) * 1_000_000n);
  }
  diffs.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return diffs[diffs.length >> 1];
}

function spread(xs: bigint[]): bigint {
  return xs.reduce((a, b) => (b > a ? b : a)) - xs.reduce((a, b) => (b < a ? b : a));
}

const abs = (n: bigint) => (n < 0n ? -n : n);

async function oneRun(skews: bigint[]): Promise<RunFigures> {
  const server = new RendezvousServer({ worldSize: RANKS, barrierTimeoutS: 120 });
  const { host, port } = await server.listen();
  const dir = mkdtempSync(join(tmpdir(), 'moe-run-bench-rdzv-'));
  try {
    // before any rank connects: the spin blocks the event loop for a few ms
    const refMinusSystem = referenceMinusSystem(server.clock);
    const runDir = new RunDir(dir);
    const ranks = await Promise.all(skews.map((skew, rank) => execa(PYTHON, [bootstrapPath, '--', WORKLOAD], {
      reject: false, all: true, timeout: 180_000, cwd: repoRoot,
      env: {
        MOE_RUN_RDZV: `${host}:${port}`, MOE_RUN_TOKEN: server.token,
        MOE_RUN_RANK: String(rank), MOE_RUN_WORLD_SIZE: String(RANKS),
        MOE_RUN_RANK_DIR: runDir.rankDir(rank), MOE_RUN_PROFILE: PROFILE,
        MOE_RUN_TEST_CLOCK_SKEW_NS: String(skew),
      },
    })));
    for (const [rank, r] of ranks.entries()) {
      if (r.exitCode !== 0) throw new Error(`bench rendezvous: rank ${rank} exited ${r.exitCode ?? r.signal}:\n${r.all}`);
    }
    const infos = await Promise.all(skews.map(async (_, rank) => (await runDir.readRankInfo(rank))!));
    const onReference = (local: string | undefined, info: RankInfo) => {
      if (local === undefined) throw new Error(`bench rendezvous: rank ${info.rank}'s rank.json lacks an anchor: ${JSON.stringify(info.anchors)}`);
      return BigInt(local) + BigInt(info.clock_offset_ns);
    };
    return {
      markerSpreadNs: spread(infos.map((i) => onReference(i.anchors.start_marker_local_ns, i))),
      releaseSpreadNs: spread(infos.map((i) => onReference(i.anchors.barrier_release_local_ns, i))),
      offsetErrorsNs: infos.map((i, rank) => abs(BigInt(i.clock_offset_ns) + skews[rank] - refMinusSystem)),
      lateMarkers: infos.filter((i) => (i.notes ?? []).some((n) => n.includes("after the marker's time"))).length,
    };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const ms = (ns: bigint) => Number(ns) / 1e6;

export async function run(): Promise<BenchResult[]> {
  const loadBefore = loadavg()[0];
  const runs: RunFigures[] = [];
  const skewed: RunFigures[] = [];
  for (let i = 0; i < RUNS; i++) {
    const figures = await oneRun(i % 2 === 1 ? SKEWS_NS : NO_SKEW);
    runs.push(figures);
    if (i % 2 === 1) skewed.push(figures);
  }
  const loadAfter = loadavg()[0];
  const load = `load avg ${loadBefore.toFixed(1)} → ${loadAfter.toFixed(1)} on ${cpus().length} cores`;
  const late = runs.reduce((n, r) => n + r.lateMarkers, 0);
  // p50 and max, and how many of the values meet the target (max alone is one preempted rank's)
  const over = (values: number[], what: string, note: string): BenchResult[] => {
    const within = `${values.filter((v) => v <= 1).length} of ${values.length} within 1 ms`;
    return [
      { name: `${what} p50`, value: percentile(values, 50)!, unit: 'ms', target: TARGET, note: `${within}; ${note}` },
      { name: `${what} max`, value: percentile(values, 100)!, unit: 'ms', target: TARGET, note: `${within}; ${note}` },
    ];
  };
  const runsNote = `${RUNS} runs of ${RANKS} ranks, half with injected skew; ${load}`;
  return [
    ...over(runs.map((r) => ms(r.markerSpreadNs)), 'moe_run/start marker spread (reference clock)',
      `${runsNote}; ${late} of ${RUNS * RANKS} markers late (release heard > 50 ms after it)`),
    ...over(runs.map((r) => ms(r.releaseSpreadNs)), 'start release spread as heard by the ranks', runsNote),
    ...over(skewed.flatMap((r) => r.offsetErrorsNs.map(ms)), 'clock offset error vs injected skew',
      `${skewed.length} runs × ${RANKS} ranks, skews ${SKEWS_NS.map((s) => `${Number(s) / 1e9} s`).join(', ')}; ${load}`),
  ];
}

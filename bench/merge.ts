// The timeline merge at scale: 4 ranks × 64 MB, 256 MB and 1 GB of uncompressed Kineto trace (the
// real nccl_data trace's event mix, scaled by gen-traces.ts), merged from a run directory with
// rank.json anchors — the streaming merge against a JSON.parse-based one, each in a child process
// (bench/merge-child.ts) so peak RSS is the merge's own.
// Figures: throughput in MB/s of uncompressed input (wall clock, and per CPU-second: the machine may
// be shared), peak RSS per size (flat as input grows?), and where JSON.parse stops.
// The generated inputs (≈1.3 GB; the 4 ranks of a size are hard links to one file) are deleted after.
import { execFile } from 'node:child_process';
import { link, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RunDir, type Manifest, type RankInfo } from '../src/run-dir.js';
import { generateTrace } from './gen-traces.js';
import type { BenchResult } from './types.js';

const here = dirname(fileURLToPath(import.meta.url)); // dist/bench
const repo = join(here, '..', '..');
const SOURCE = join(repo, '..', 'shared', 'traces', 'hta', 'nccl_parser_config', 'nccl_data.json.gz');
const RANKS = 4;
// per-rank sizes; MOE_RUN_BENCH_MERGE_MB=64 for a quick look
const SIZES_MB = (process.env.MOE_RUN_BENCH_MERGE_MB ?? '64,256,1000').split(',').map(Number);
const RELEASE = 1711964650000000000n;

interface ChildResult {
  seconds?: number;
  cpuSeconds?: number;
  maxRssMB: number;
  inputBytes?: number;
  events?: number;
  error?: string;
}

/** A run directory of RANKS ranks whose traces are `trace` (hard links), anchored at ts 0 of the file. */
async function runDir(root: string, trace: string): Promise<string> {
  const rd = new RunDir(root);
  await rd.create();
  const manifest = {
    schema: 1, name: 'bench', run_id: 'bench', created: new Date().toISOString(), moe_run_version: 'bench', command: [],
    config: {} as Manifest['config'], nnodes: 1, world_size: RANKS,
    ranks: Array.from({ length: RANKS }, (_, rank) => ({ rank, local_rank: rank, node_rank: 0, host: 'bench', device: `cuda:${rank}`, argv: [], env: {}, cwd: '/' })),
    versions: { node: process.version },
    rendezvous: { host: '127.0.0.1', port: 0, releases: { start: String(RELEASE) }, clock_offsets: {} },
    timings: {}, status: 'ok', notes: [], events: [],
  } satisfies Manifest;
  await rd.writeManifest(manifest);
  for (let rank = 0; rank < RANKS; rank++) {
    await rd.createRankDir(rank);
    await link(trace, join(rd.rankDir(rank), `bench_${rank}.rank${rank}.pt.trace.json`));
    const info: RankInfo = {
      rank, world_size: RANKS, host: 'bench', pid: 1000 + rank, torch_version: 'bench', trace_format: 'kineto', trace_file: null,
      profiled: true, clock_offset_ns: String(rank * 1000), clock_rtt_ns: '0', stages: {}, steps: 0,
      anchors: { start_marker_local_ns: String(RELEASE + BigInt(rank) * 1_000_000n), start_marker_trace_us: '4458676522690.655' },
    };
    await writeFile(rd.rankJson(rank), JSON.stringify(info));
  }
  return rd.root;
}

async function child(mode: 'stream' | 'json-parse', dir: string, output: 'gz' | 'plain'): Promise<ChildResult> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--max-old-space-size=8192', join(here, 'merge-child.js'), mode, dir, output], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as ChildResult;
}

const mbps = (r: ChildResult) => r.inputBytes! / 1e6 / r.seconds!;
const mbPerCpu = (r: ChildResult) => r.inputBytes! / 1e6 / r.cpuSeconds!;

export async function run(): Promise<BenchResult[]> {
  const work = join(repo, 'bench', 'out', 'merge-inputs');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const results: BenchResult[] = [];
  const load = () => `load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores`;
  try {
    for (const mb of SIZES_MB) {
      const trace = join(work, `trace-${mb}.json`);
      await generateTrace(SOURCE, trace, mb);
      const dir = await runDir(join(work, `run-${mb}`), trace);
      // production output (gzip): wall clock and memory; plain output: the merge's own CPU per MB
      const s = await child('stream', dir, 'gz');
      if (s.error) throw new Error(`streaming merge failed at ${RANKS}×${mb} MB: ${s.error}`);
      const sp = await child('stream', dir, 'plain');
      const j = await child('json-parse', dir, 'gz');
      const jp = j.error ? null : await child('json-parse', dir, 'plain');
      const tag = `${RANKS}×${mb} MB`;
      results.push(
        { name: `streaming merge ${tag}: wall`, value: mbps(s), unit: 'MB/s', note: `${(s.inputBytes! / 1e6).toFixed(0)} MB, ${s.events} events in ${s.seconds!.toFixed(1)} s, gzip output (${load()})` },
        { name: `streaming merge ${tag}: one core, no gzip`, value: mbPerCpu(sp), unit: 'MB/cpu-s', target: '≥ 200 MB/s per core', note: 'input MB per CPU-second of the merge process, plain JSON output to /dev/null' },
        { name: `streaming merge ${tag}: peak RSS`, value: s.maxRssMB, unit: 'MB', target: '≤ 300, flat' },
      );
      if (jp && !j.error) {
        results.push(
          { name: `JSON.parse merge ${tag}: wall`, value: mbps(j), unit: 'MB/s', note: `${j.seconds!.toFixed(1)} s, gzip output` },
          { name: `streaming vs JSON.parse ${tag}: wall`, value: mbps(s), unit: 'MB/s', baseline: mbps(j), ratio: mbps(s) / mbps(j), target: '≥ 3×' },
          { name: `streaming vs JSON.parse ${tag}: CPU, no gzip`, value: mbPerCpu(sp), unit: 'MB/cpu-s', baseline: mbPerCpu(jp), ratio: mbPerCpu(sp) / mbPerCpu(jp), target: '≥ 3×' },
          { name: `JSON.parse merge ${tag}: peak RSS`, value: j.maxRssMB, unit: 'MB' },
        );
      } else {
        results.push({ name: `JSON.parse merge ${tag}`, value: 0, unit: 'MB/s', note: `fails: ${j.error}` });
      }
      await rm(trace, { force: true });
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return results;
}

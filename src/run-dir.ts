// The run directory: the contract between stages (see DESIGN.md "The run directory").
// This is the only module that knows file names and layout; every stage asks it for paths and
// reads/writes the manifest through it, so that the layout can change in one place.
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RunConfig } from './config/schema.js';

export const MANIFEST_SCHEMA_VERSION = 1;

/** One rank as planned and as it ended. */
export interface RankRecord {
  rank: number;
  local_rank: number;
  node_rank: number;
  host: string;
  /** "cuda:D" or "cpu" */
  device: string;
  argv: string[];
  /** environment the launcher added (the token is masked) */
  env: Record<string, string>;
  cwd: string;
  pid?: number;
  started_ns?: string;
  ended_ns?: string;
  exit_code?: number | null;
  signal?: string | null;
  /** ok: exited 0; failed: non-zero or died; stopped: killed by moe-run because another rank failed */
  status?: 'ok' | 'failed' | 'stopped' | 'not-started' | 'running';
  reason?: string;
}

/** A launcher event shown as an instant on the timeline's "moe-run" process. */
export interface LauncherEvent {
  /** epoch ns on the reference clock (node 0's launcher), as a decimal string */
  t_ns: string;
  kind: 'spawn' | 'connect' | 'barrier-release' | 'barrier-timeout' | 'exit' | 'failure' | 'signal' | 'note';
  rank?: number;
  node?: number;
  detail?: string;
}

export interface StageTiming {
  start_ns: string;
  end_ns?: string;
}

export interface Manifest {
  schema: number;
  name: string;
  run_id: string;
  created: string;
  moe_run_version: string;
  command: string[];
  /** where the config came from (its file), as given on the command line */
  config_source?: string;
  config: RunConfig;
  nnodes: number;
  world_size: number;
  ranks: RankRecord[];
  /** host inventory (src/sample/host.ts) */
  host?: Record<string, unknown>;
  versions: { node: string; python?: string; torch?: string; [k: string]: string | undefined };
  rendezvous?: {
    host: string;
    port: number;
    /** barrier name → release time, epoch ns on the reference clock */
    releases: Record<string, string>;
    /** rank → clock offset ns (reference − rank's clock) and the round trip it came from */
    clock_offsets: Record<string, { offset_ns: string; rtt_ns: string }>;
    /** node → agent clock offset ns, multi-node only */
    node_offsets?: Record<string, { offset_ns: string; rtt_ns: string }>;
  };
  timings: Record<string, StageTiming>;
  status: 'running' | 'ok' | 'failed' | 'interrupted';
  exit_code?: number;
  failure?: {
    rank?: number;
    node?: number;
    exit_code?: number | null;
    signal?: string | null;
    pid?: number;
    reason: string;
    stderr_tail?: string[];
  };
  /** things a reader should know: nvidia-smi absent, a dropped field, a sampler gap… */
  notes: string[];
  events: LauncherEvent[];
}

/** Per-rank file written by the Python bootstrap (patches/). */
export interface RankInfo {
  rank: number;
  world_size: number;
  host: string;
  pid: number;
  torch_version: string;
  trace_format: 'kineto' | 'legacy' | null;
  trace_file: string | null;
  profiled: boolean;
  /** reference − local clock, ns; 0 when no rendezvous */
  clock_offset_ns: string;
  clock_rtt_ns: string;
  anchors: {
    /** local wall clock ns when the start barrier released this rank */
    barrier_release_local_ns?: string;
    /** reference clock ns of the release, as the server sent it */
    barrier_release_ref_ns?: string;
    /** local wall clock ns just after the profiler started */
    profiler_start_local_ns?: string;
    /** local wall clock ns at the start of the moe_run/start marker range */
    start_marker_local_ns?: string;
    /** the same marker's ts in the trace file's own time base, µs as a decimal string */
    start_marker_trace_us?: string;
  };
  stages: Record<string, number>;
  steps: number;
  throughput?: { tokens: number; seconds: number; tokens_per_s: number };
  loss?: number;
  perplexity?: number;
  /** what the bootstrap wants a reader to know: a hook whose module never loaded, CUDA asked for but absent… */
  notes?: string[];
}

/** Written to a temporary file and renamed, so that a reader never sees half a file. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

export function runDirName(name: string, date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${date.getUTCFullYear()}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}-${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`;
  return `${name}-${stamp}`;
}

/** Paths inside one run directory. */
export class RunDir {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }
  get manifest() { return join(this.root, 'manifest.json'); }
  get config() { return join(this.root, 'config.yaml'); }
  get launcherLog() { return join(this.root, 'launcher.log'); }
  get samplesDir() { return join(this.root, 'samples'); }
  get nvidiaSmiCsv() { return join(this.samplesDir, 'nvidia-smi.csv'); }
  get processCsv() { return join(this.samplesDir, 'process.csv'); }
  get gpuTopology() { return join(this.samplesDir, 'gpu-topology.txt'); }
  /** Multi-node: node N's samples as its agent wrote them (its own clock), before node 0 merges them. */
  nodeSamplesDir(node: number) { return join(this.samplesDir, `node-${node}`); }
  /** Multi-node: node N's launcher log. */
  nodeLauncherLog(node: number) { return join(this.root, `launcher-node-${node}.log`); }
  get timeline() { return join(this.root, 'timeline.json.gz'); }
  get summary() { return join(this.root, 'summary.json'); }
  get reportMd() { return join(this.root, 'report.md'); }
  get reportHtml() { return join(this.root, 'report.html'); }
  rankDir(rank: number) { return join(this.root, `rank-${rank}`); }
  stdout(rank: number) { return join(this.rankDir(rank), 'stdout.log'); }
  stderr(rank: number) { return join(this.rankDir(rank), 'stderr.log'); }
  opsJson(rank: number) { return join(this.rankDir(rank), 'ops.json'); }
  opsCpuTxt(rank: number) { return join(this.rankDir(rank), 'ops_cpu.txt'); }
  opsCudaTxt(rank: number) { return join(this.rankDir(rank), 'ops_cuda.txt'); }
  rankJson(rank: number) { return join(this.rankDir(rank), 'rank.json'); }
  errorJson(rank: number) { return join(this.rankDir(rank), 'error.json'); }
  /** The trace file name the bootstrap writes; existing tools (HTA, TensorBoard) read the folder as is. */
  static traceFileName(host: string, pid: number, rank: number) {
    return `${host}_${pid}.rank${rank}.pt.trace.json.gz`;
  }
  /** archive written next to the run directory by `pack` */
  get archive() { return `${this.root}.tar.gz`; }

  async create(): Promise<void> {
    await mkdir(this.samplesDir, { recursive: true });
  }
  async createRankDir(rank: number): Promise<string> {
    const dir = this.rankDir(rank);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Ranks that have a rank-R/ folder, sorted. */
  async ranks(): Promise<number[]> {
    const entries = existsSync(this.root) ? await readdir(this.root) : [];
    return entries
      .map((e) => /^rank-(\d+)$/.exec(e))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  }

  /** Every rank of the run: those the manifest lists (also ranks that never wrote a folder) and those
   *  with a rank-R/ folder (also ranks of a manifest cut short), sorted. */
  async allRanks(manifest: Pick<Manifest, 'ranks'>): Promise<number[]> {
    const ids = new Set([...(manifest.ranks ?? []).map((r) => r.rank), ...(await this.ranks())]);
    return [...ids].sort((a, b) => a - b);
  }

  /** The rank's trace file, or null if it exported none. */
  async traceFile(rank: number): Promise<string | null> {
    const dir = this.rankDir(rank);
    if (!existsSync(dir)) return null;
    const hit = (await readdir(dir)).find((f) => /\.pt\.trace\.json(\.gz)?$/.test(f));
    return hit ? join(dir, hit) : null;
  }

  isRunDir(): boolean {
    return existsSync(this.manifest);
  }

  async readManifest(): Promise<Manifest> {
    return JSON.parse(await readFile(this.manifest, 'utf8')) as Manifest;
  }
  async writeManifest(m: Manifest): Promise<void> {
    await writeAtomic(this.manifest, JSON.stringify(m, null, 2) + '\n');
  }
  async readRankInfo(rank: number): Promise<RankInfo | null> {
    const p = this.rankJson(rank);
    if (!existsSync(p)) return null;
    return JSON.parse(await readFile(p, 'utf8')) as RankInfo;
  }
}

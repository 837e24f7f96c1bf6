// Shared by the Python-side tests: start tinymoe ranks (plain or under the bootstrap) as real
// processes of /usr/bin/python3 (torch 1.13 here), and read what they leave behind.
import { execa } from 'execa';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { freePort } from '../../src/plan/ports.js';
import { bootstrapPath, repoRoot, workloadsDir } from '../../src/plan/repo.js';

// The first python3 on PATH may lack torch; the system one has it (README, .ci).
export const PYTHON = process.env.MOE_RUN_PYTHON ?? '/usr/bin/python3';
export { bootstrapPath, freePort, repoRoot };

export const TINYMOE_HOOKS = [
  { target: 'tinymoe.models:TransformerDecoder', moe_suffix: false },
  { target: 'tinymoe.models:TransformerDecoderLayer', moe_suffix: true },
  { target: 'tinymoe.multihead_attention:MultiheadAttention', moe_suffix: false },
  { target: 'tinymoe.moe_layer:MOELayer', moe_suffix: false },
];

/** MOE_RUN_PROFILE as the plan writes it for tinymoe, with `over` on top. */
export function tinymoeProfile(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    enabled: true, activities: ['cpu'], record_shapes: true, profile_memory: true, with_stack: false,
    schedule: null, hooks: TINYMOE_HOOKS, region: 'tinymoe.eval_lm:eval_lm',
    step: 'tinymoe.sequence_scorer:SequenceScorer.generate', row_limit: 20, ...over,
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `moe-run-${prefix}-`));
}

export interface RankRun {
  /** tinymoe flags besides the distributed ones */
  args?: string[];
  /** run under the bootstrap (`--entry tinymoe.eval_lm:cli_main`, or `-m tinymoe.eval_lm` with
   *  asModule), exporting into runDir/rank-R */
  bootstrap?: { runDir: string; env?: Record<string, string>; rankEnv?: (rank: number) => Record<string, string>; asModule?: boolean };
}

export interface RankResult {
  exitCode?: number;
  /** stdout and stderr interleaved */
  all: string;
}

/** Start `world` tinymoe ranks on gloo and wait for all of them. */
export async function runRanks(world: number, opts: RankRun = {}): Promise<RankResult[]> {
  const port = await freePort();
  return Promise.all(Array.from({ length: world }, async (_, rank) => {
    const flags = [
      '--cpu', ...(opts.args ?? []),
      '--distributed-init-method', `tcp://127.0.0.1:${port}`, '--distributed-world-size', String(world),
      '--distributed-rank', String(rank), '--device-id', '0', '--distributed-no-spawn', '--distributed-backend', 'gloo',
    ];
    const how = opts.bootstrap?.asModule ? ['-m', 'tinymoe.eval_lm'] : ['--entry', 'tinymoe.eval_lm:cli_main'];
    const argv = opts.bootstrap ? [bootstrapPath, ...how, '--', ...flags] : ['-m', 'tinymoe.eval_lm', ...flags];
    const env: Record<string, string> = { PYTHONPATH: workloadsDir, PYTHONUNBUFFERED: '1' };
    if (opts.bootstrap) {
      Object.assign(env, {
        MOE_RUN_RANK: String(rank), MOE_RUN_WORLD_SIZE: String(world),
        MOE_RUN_RANK_DIR: join(opts.bootstrap.runDir, `rank-${rank}`), MOE_RUN_PROFILE: tinymoeProfile(),
      }, opts.bootstrap.env, opts.bootstrap.rankEnv?.(rank));
    }
    const r = await execa(PYTHON, argv, { env, reject: false, all: true, timeout: 120_000 });
    return { exitCode: r.exitCode, all: r.all ?? '' };
  }));
}

export interface TraceEvent {
  name: string;
  ph: string;
  ts: number;
  dur?: number;
  tid: number | string;
  pid: number | string;
  cat?: string;
}

/** The events of a (gzipped) trace in either layout: legacy array or Kineto object. */
export function readTrace(path: string): { legacy: boolean; events: TraceEvent[] } {
  const doc = JSON.parse(gunzipSync(readFileSync(path)).toString('utf8')) as TraceEvent[] | { traceEvents: TraceEvent[] };
  return Array.isArray(doc) ? { legacy: true, events: doc } : { legacy: false, events: doc.traceEvents };
}

/** A summary line of the workload's output, by pattern. */
export function line(output: string, pattern: RegExp): RegExpExecArray {
  const m = pattern.exec(output);
  if (!m) throw new Error(`no line matching ${pattern} in:\n${output}`);
  return m;
}

export const EVALUATED = /Evaluated ([\d,]+) tokens in ([\d.]+)s \(([\d.]+) tokens\/s\)/;
export const LOSS = /valid Loss \(base 2\): ([\d.]+), Perplexity: ([\d.]+)/;
export const MOE = /MoE: (\d+) all_to_all calls, (\d+) of (\d+) expert assignments sent to other ranks, (\d+) dropped/;

// Run directories for analysis tests, built from real traces (../shared/traces/hta) the way the
// launcher lays them out: manifest.json, rank-R/<host>_<pid>.rankR.pt.trace.json.gz, rank.json.
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { onTestFinished } from 'vitest';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { RunDir, type Manifest, type RankInfo } from '../../src/run-dir.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const HTA = join(REPO, '..', 'shared', 'traces', 'hta');

/** The whole trace, parsed plainly: the independent side of the tests. */
export function loadTrace(path: string): { traceEvents: Record<string, any>[] } & Record<string, unknown> {
  return JSON.parse(gunzipSync(readFileSync(path)).toString('utf8'));
}

export interface RankSpec {
  rank: number;
  trace?: string;
  info?: Partial<RankInfo>;
  device?: string;
  status?: 'ok' | 'failed';
  reason?: string;
}

export function manifestFor(name: string, ranks: RankSpec[], extra: Partial<Manifest> = {}): Manifest {
  return {
    schema: 1,
    name,
    run_id: `${name}-20260101-000000`,
    created: '2026-01-01T00:00:00.000Z',
    moe_run_version: 'test',
    command: ['moe-run'],
    config: {
      name,
      gpus: ranks.length,
      workload: { kind: 'command', argv: ['true'], module: false, backend: 'nccl', master_port: 0 },
      profile: { enabled: true, activities: ['cpu', 'cuda'], record_shapes: false, profile_memory: false, with_stack: false, schedule: null, row_limit: 100 },
    } as unknown as Manifest['config'],
    nnodes: 1,
    world_size: ranks.length,
    ranks: ranks.map((r) => ({
      rank: r.rank, local_rank: r.rank, node_rank: 0, host: 'testhost', device: r.device ?? `cuda:${r.rank}`,
      argv: [], env: {}, cwd: '/', status: r.status ?? 'ok', ...(r.reason ? { reason: r.reason } : {}),
    })),
    versions: { node: process.version },
    timings: {},
    status: ranks.some((r) => r.status === 'failed') ? 'failed' : 'ok',
    notes: [],
    events: [],
    ...extra,
  };
}

/** A temp folder, removed when the current test ends. */
export async function tempFolder(prefix: string): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), `moe-run-${prefix}-`));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  return root;
}

/** A run directory in a fresh temp folder, with each rank's trace copied in under the launcher's name. */
export async function makeRunDir(name: string, ranks: RankSpec[], extra: Partial<Manifest> = {}): Promise<string> {
  const root = await tempFolder('analyze');
  const run = new RunDir(join(root, `${name}-20260101-000000`));
  await run.create();
  await run.writeManifest(manifestFor(name, ranks, extra));
  for (const r of ranks) {
    const dir = await run.createRankDir(r.rank);
    if (r.trace) await copyFile(r.trace, join(dir, RunDir.traceFileName('testhost', 1000 + r.rank, r.rank)));
    if (r.info) {
      const info: RankInfo = {
        rank: r.rank, world_size: ranks.length, host: 'testhost', pid: 1000 + r.rank, torch_version: '2.x',
        trace_format: 'kineto', trace_file: null, profiled: true, clock_offset_ns: '0', clock_rtt_ns: '0',
        anchors: {}, stages: {}, steps: 0, ...r.info,
      };
      await writeFile(run.rankJson(r.rank), JSON.stringify(info));
    }
  }
  return run.root;
}

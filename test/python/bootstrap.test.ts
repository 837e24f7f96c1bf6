// The rank bootstrap standalone (no rendezvous): tinymoe under patches/moe_run_bootstrap.py with the
// profile the plan gives it, 1 and 2 real gloo ranks, and what each leaves in its rank directory.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RankInfo } from '../../src/run-dir.js';
import { RunDir } from '../../src/run-dir.js';
import {
  EVALUATED, LOSS, PYTHON, bootstrapPath, line, readTrace, runRanks, tempDir, tinymoeProfile, type RankResult, type TraceEvent,
} from './helpers.js';

const STEPS = 4;
const MOE_LAYERS = 2; // tinymoe's defaults: 4 layers, an MoE layer every 2

function rankInfo(dir: string, rank: number): RankInfo {
  return JSON.parse(readFileSync(new RunDir(dir).rankJson(rank), 'utf8')) as RankInfo;
}

function inside(e: TraceEvent, outer: TraceEvent): boolean {
  return outer.ts <= e.ts && e.ts + (e.dur ?? 0) <= outer.ts + (outer.dur ?? 0);
}

describe('bootstrap, standalone, profiled', () => {
  const runs: Record<number, { dir: string; results: RankResult[] }> = {};
  beforeAll(async () => {
    await Promise.all([1, 2].map(async (world) => {
      const dir = tempDir(`bootstrap-${world}`);
      runs[world] = { dir, results: await runRanks(world, { args: ['--max-valid-steps', String(STEPS)], bootstrap: { runDir: dir } }) };
    }));
  });

  it.each([1, 2])('%i rank(s): every rank exports trace, ops.json, both tables and rank.json', (world) => {
    const { dir, results } = runs[world];
    for (const [rank, r] of results.entries()) {
      expect(r.exitCode, r.all).toBe(0);
      const runDir = new RunDir(dir);
      const info = rankInfo(dir, rank);
      expect(info).toMatchObject({ rank, world_size: world, profiled: true, steps: STEPS, clock_offset_ns: '0' });
      expect(info.trace_file).toBe(RunDir.traceFileName(info.host, info.pid, rank));
      const files = readdirSync(runDir.rankDir(rank)).sort();
      expect(files).toEqual([info.trace_file, 'ops.json', 'ops_cpu.txt', 'ops_cuda.txt', 'rank.json'].sort());

      const tracePath = join(runDir.rankDir(rank), info.trace_file!);
      expect(readFileSync(tracePath).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // gzip
      const { legacy, events } = readTrace(tracePath);
      expect(legacy).toBe(info.trace_format === 'legacy');

      // module hooks: the layer ranges carry fairseq's labels, the MoE ones hold the all-to-alls
      const named = (name: string) => events.filter((e) => e.name === name && e.ph === 'X');
      const moeLayers = named('TransformerDecoderLayer with MoE');
      expect(moeLayers).toHaveLength(MOE_LAYERS * STEPS);
      expect(named('TransformerDecoderLayer without MoE')).toHaveLength(2 * STEPS);
      expect(named('TransformerDecoder')).toHaveLength(STEPS);
      expect(named('MOELayer')).toHaveLength(MOE_LAYERS * STEPS);
      expect(named('MultiheadAttention')).toHaveLength(4 * STEPS);
      const allToAll = events.filter((e) => /^(gloo|nccl|c10d)[:_].*all_to_all/.test(e.name) && e.ph === 'X');
      expect(allToAll).toHaveLength(2 * MOE_LAYERS * STEPS);
      for (const a of allToAll) expect(moeLayers.some((m) => inside(a, m))).toBe(true);

      // the marker: once, at the ts rank.json says; the profiler starts before the barrier releases,
      // the marker is recorded right after
      const markers = named('moe_run/start');
      expect(markers).toHaveLength(1);
      expect(String(markers[0].ts)).toBe(info.anchors.start_marker_trace_us);
      const { barrier_release_local_ns: release, profiler_start_local_ns: start, start_marker_local_ns: marker } = info.anchors;
      expect(BigInt(start!)).toBeLessThanOrEqual(BigInt(release!));
      expect(BigInt(release!)).toBeLessThanOrEqual(BigInt(marker!));

      // ops.json: one row per op from the profiler's averages
      const ops = JSON.parse(readFileSync(runDir.opsJson(rank), 'utf8')) as { ops: { name: string; calls: number; cpu_total_us: number; device_total_us: number }[] };
      const moeRow = ops.ops.find((o) => o.name === 'TransformerDecoderLayer with MoE');
      expect(moeRow?.calls).toBe(MOE_LAYERS * STEPS);
      expect(moeRow!.cpu_total_us).toBeGreaterThan(0);
      expect(ops.ops.find((o) => o.name === allToAll[0].name)?.calls).toBe(2 * MOE_LAYERS * STEPS);
      const cpuTable = readFileSync(runDir.opsCpuTxt(rank), 'utf8');
      expect(cpuTable).toMatch(/Name\s+Self CPU %/);
      expect(cpuTable).toContain('TransformerDecoderLayer with MoE');
      expect(readFileSync(runDir.opsCudaTxt(rank), 'utf8')).toMatch(/Name\s+Self CPU %/);

      // stage timings and what the workload printed
      for (const stage of ['bootstrap', 'load', 'barrier_wait', 'region', 'export']) expect(info.stages[stage]).toBeGreaterThanOrEqual(0);
      const [, tokens, , perSecond] = line(r.all, EVALUATED);
      expect(info.throughput).toMatchObject({ tokens: Number(tokens.replace(/,/g, '')), tokens_per_s: Number(perSecond) });
      const [, loss, ppl] = line(r.all, LOSS);
      expect(info).toMatchObject({ loss: Number(loss), perplexity: Number(ppl) });
    }
  });
});

describe('bootstrap, standalone, other paths', () => {
  it('profile.enabled false runs the same path (module run as __main__) without the profiler', async () => {
    const dir = tempDir('bootstrap-off');
    const [r] = await runRanks(1, {
      args: ['--max-valid-steps', '3'],
      bootstrap: { runDir: dir, asModule: true, env: { MOE_RUN_PROFILE: tinymoeProfile({ enabled: false }) } },
    });
    expect(r.exitCode, r.all).toBe(0);
    expect(readdirSync(join(dir, 'rank-0'))).toEqual(['rank.json']);
    const info = rankInfo(dir, 0);
    // the region, found in the __main__ copy of tinymoe.eval_lm, was entered and its steps counted
    expect(info).toMatchObject({ profiled: false, trace_file: null, trace_format: null, steps: 3 });
    expect(info.stages.region).toBeGreaterThan(0);
    expect(info.anchors.barrier_release_local_ns).toMatch(/^\d+$/);
    expect(info.throughput?.tokens).toBe(3 * 2 * 128);
    expect(info.notes ?? []).toEqual([]);
  });

  it('a failure inside the region leaves error.json and rank.json, and exits non-zero', async () => {
    const dir = tempDir('bootstrap-fail');
    // an empty vocabulary: the corpus cannot be sampled, which happens batch by batch inside eval_lm
    const [r] = await runRanks(1, { args: ['--vocab-size', '0'], bootstrap: { runDir: dir } });
    expect(r.exitCode).toBe(1);
    const error = JSON.parse(readFileSync(new RunDir(dir).errorJson(0), 'utf8')) as Record<string, string>;
    expect(error.type).toBe('RuntimeError');
    expect(error.message.length).toBeGreaterThan(0);
    expect(error.traceback).toContain('eval_lm');
    expect(Number.isNaN(Date.parse(error.time))).toBe(false);
    const info = rankInfo(dir, 0);
    expect(info).toMatchObject({ profiled: false, trace_file: null });
    expect(info.stages.region).toBeGreaterThanOrEqual(0);
    expect(readdirSync(join(dir, 'rank-0')).some((f) => f.includes('.pt.trace.'))).toBe(false);
  });

  it('runs a script as __main__ with its own function as the region, and keeps its exit status', async () => {
    const dir = tempDir('bootstrap-script');
    const script = join(dir, 'work.py');
    writeFileSync(script, [
      'import sys',
      'def work(n):',
      '    print(f"Evaluated {n:,} tokens in 2.0s ({n / 2:.2f} tokens/s)")',
      'if __name__ == "__main__":',
      '    work(int(sys.argv[1]))',
      '    sys.exit(7)',
      '',
    ].join('\n'));
    const r = await execa(PYTHON, [bootstrapPath, '--', script, '1234'], {
      reject: false, all: true,
      env: { MOE_RUN_RANK_DIR: join(dir, 'rank-0'), MOE_RUN_PROFILE: JSON.stringify({ enabled: false, region: '__main__:work' }) },
    });
    expect(r.exitCode, r.all).toBe(7);
    const info = rankInfo(dir, 0);
    expect(info.throughput).toEqual({ tokens: 1234, seconds: 2, tokens_per_s: 617 });
    expect(info.stages.region).toBeGreaterThanOrEqual(0);
    expect(info.anchors.barrier_release_local_ns).toMatch(/^\d+$/);
    expect(JSON.parse(readFileSync(new RunDir(dir).errorJson(0), 'utf8'))).toMatchObject({ type: 'SystemExit', message: '7' });
  });

  it("keeps the workload's own exit status (argparse exits 2) and reports it", async () => {
    const dir = tempDir('bootstrap-exit');
    const [r] = await runRanks(1, { args: ['--no-such-flag'], bootstrap: { runDir: dir } });
    expect(r.exitCode).toBe(2);
    expect(r.all).toContain('unrecognized arguments: --no-such-flag');
    const error = JSON.parse(readFileSync(new RunDir(dir).errorJson(0), 'utf8')) as Record<string, string>;
    expect(error.type).toBe('SystemExit');
    expect(existsSync(new RunDir(dir).rankJson(0))).toBe(true);
  });
});

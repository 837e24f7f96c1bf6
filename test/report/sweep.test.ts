// Sweep tables: three runs of one config that differ only in the MoE capacity fraction → the table's
// only config column is that fraction; the CSV reads back as a spreadsheet would read it.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { splitCsv } from '../../src/sample/csv.js';
import { reportCommand, flattenConfig } from '../../src/report/sweep.js';
import { UserError } from '../../src/errors.js';
import type { Manifest } from '../../src/run-dir.js';
import { HTA, makeRunDir } from '../analyze/helpers.js';

const FRACTION = 'workload.model_overrides.moe_eval_capacity_token_fraction';

function tinyConfig(name: string, fraction: number): Manifest['config'] {
  return {
    name,
    gpus: 2,
    workload: {
      kind: 'tinymoe', backend: 'gloo', master_port: 0, device: 'cpu', tokens_per_sample: 128, batch_size: 2,
      max_valid_steps: 4, num_layers: 4, embed_dim: 64, ffn_dim: 128, heads: 4, vocab_size: 1000, num_experts: 4,
      moe_freq: 2, seed: 1, model_overrides: { moe_eval_capacity_token_fraction: fraction }, fp16: false, extra_args: [],
    },
    profile: { enabled: true, activities: ['cpu'], record_shapes: false, profile_memory: false, with_stack: false, schedule: null, row_limit: 100 },
  } as unknown as Manifest['config'];
}

/** A two-rank run on the real sampled pair, with throughput that falls as the fraction grows. */
async function sweepRun(name: string, fraction: number, extra: Partial<Manifest> = {}): Promise<string> {
  const ranks = [0, 1].map((rank) => ({
    rank,
    trace: join(HTA, `trace_filter/sampled_rank-${rank}.json.gz`),
    info: { throughput: { tokens: 4096, seconds: 1 + fraction, tokens_per_s: 4096 / (1 + fraction) }, perplexity: 20 + fraction },
  }));
  return makeRunDir(name, ranks, { config: tinyConfig(name, fraction), ...extra });
}

describe('moe-run report DIR… (sweep)', () => {
  it('shows the fraction as the one differing column, and CSV parses back', async () => {
    const fractions = [0.05, 0.1, 0.2];
    const dirs = await Promise.all(fractions.map((f, i) => sweepRun(`cap${i}`, f)));
    const csv = await reportCommand(dirs, { format: 'csv' });
    expect(csv.endsWith('\r\n')).toBe(true);
    const [header, ...rows] = csv.slice(0, -2).split('\r\n').map(splitCsv);
    expect(header).toEqual(['run', 'gpus', FRACTION, 'tokens_per_s', 'region_s', 'all_to_all_pct', 'gpu_busy_pct', 'peak_gpu_mem_mib', 'peak_rss_mib', 'status']);
    expect(rows).toHaveLength(3);
    const col = (name: string) => rows.map((r) => r[header.indexOf(name)]);
    expect(col(FRACTION).map(Number)).toEqual(fractions);
    expect(col('gpus')).toEqual(['2', '2', '2']);
    expect(col('tokens_per_s').map(Number)).toEqual(fractions.map((f) => Number(((2 * 4096) / (1 + f)).toFixed(1))));
    expect(col('status')).toEqual(['ok', 'ok', 'ok']);
    for (const v of col('all_to_all_pct')) expect(Number(v)).toBeGreaterThan(0);

    // sorted by tokens/s, highest first: the smallest fraction leads
    const sorted = JSON.parse(await reportCommand(dirs, { format: 'json', sort: '-tokens_per_s' })) as Record<string, unknown>[];
    expect(sorted.map((r) => r[FRACTION])).toEqual([0.05, 0.1, 0.2]);
    const asc = JSON.parse(await reportCommand(dirs, { format: 'json', sort: 'tokens/s' })) as Record<string, unknown>[];
    expect(asc.map((r) => r[FRACTION])).toEqual([0.2, 0.1, 0.05]);

    const table = await reportCommand(dirs, { format: 'table' });
    expect(table.split('\n')[0]).toContain(FRACTION);
    const md = await reportCommand(dirs, { format: 'md' });
    expect(md.split('\n')[1]).toMatch(/^\| --- \|/);
  });

  it('gives a failed run its reason, quotes commas in CSV, and rejects unknown sort columns', async () => {
    const ok = await sweepRun('okrun', 0.1);
    const failed = await sweepRun('badrun', 0.2, { status: 'failed', failure: { rank: 1, reason: 'rank 1 exited with code 1, out of memory' } });
    const csv = await reportCommand([ok, failed], { format: 'csv' });
    expect(csv).toContain('"failed: rank 1 exited with code 1, out of memory"');
    const parsed = csv.trimEnd().split('\r\n').map(splitCsv);
    expect(parsed[2][parsed[0].indexOf('status')]).toBe('failed: rank 1 exited with code 1, out of memory');
    await expect(reportCommand([ok, failed], { sort: 'nope' })).rejects.toBeInstanceOf(UserError);
    await expect(reportCommand([join(HTA, 'cpu_only')])).rejects.toThrow(/not a run directory/);
    // `moe-run report runs/*` also meets the archives pack wrote: skipped, with a warning
    const warnings: string[] = [];
    const rows = JSON.parse(await reportCommand([ok, `${ok}.tar.gz`, failed], { format: 'json' }, (w) => warnings.push(w)));
    expect(rows).toHaveLength(2);
    expect(warnings).toEqual([`moe-run report: skipping ${ok}.tar.gz: not a run directory`]);
  });

  it('one directory prints that run\'s findings and ranks', async () => {
    const dir = await sweepRun('single', 0.1);
    const out = await reportCommand([dir]);
    expect(out).toContain('all-to-all (NCCL SendRecv) takes');
    expect(out).toMatch(/Rank \d arrives last/);
    expect(out).toContain('report.html');
  });

  it('flattens configs to dotted keys', () => {
    expect(flattenConfig({ a: { b: 1, c: [1, 2] }, d: 'x' })).toEqual({ 'a.b': '1', 'a.c': '[1,2]', d: 'x' });
  });
});

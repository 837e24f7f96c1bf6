// The tiny-cpu demo's report, on real gloo ranks (torch 1.13, legacy traces): it must name gloo
// all-to-all as the collective, give each rank's share, and its findings must be true of the run —
// checked against the traces read plainly here. Once through the bootstrap alone (a run directory
// assembled here), once end to end through `moe-run --config configs/tiny-cpu.yaml`.
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { percent } from '../../src/analyze/format.js';
import type { Summary } from '../../src/analyze/summary.js';
import { loadConfig } from '../../src/config/index.js';
import { writeRunReports } from '../../src/report/index.js';
import { RunDir, type RankInfo } from '../../src/run-dir.js';
import { REPO, loadTrace, manifestFor, tempFolder } from '../analyze/helpers.js';
import { PYTHON, runRanks } from '../python/helpers.js';

type Ev = { name: string; ph: string; ts: number; dur?: number };

function union(iv: [number, number][]): number {
  let total = 0;
  let cur: [number, number] | null = null;
  for (const [a, b] of [...iv].sort((x, y) => x[0] - y[0])) {
    if (cur && a <= cur[1]) cur[1] = Math.max(cur[1], b);
    else {
      if (cur) total += cur[1] - cur[0];
      cur = [a, b];
    }
  }
  return cur ? total + cur[1] - cur[0] : total;
}

/** What the report must say about a 2-rank tiny-cpu run, recomputed from its traces and rank.json. */
async function checkTinyReport(dir: string): Promise<void> {
  const run = new RunDir(dir);
  const summary = JSON.parse(await readFile(run.summary, 'utf8')) as Summary;
  const md = await readFile(run.reportMd, 'utf8');
  const html = await readFile(run.reportHtml, 'utf8');
  const ranks = await run.ranks();
  expect(ranks).toEqual([0, 1]);

  const perRank = await Promise.all(ranks.map(async (rank) => {
    const info = JSON.parse(readFileSync(run.rankJson(rank), 'utf8')) as RankInfo;
    const doc = loadTrace((await run.traceFile(rank))!) as unknown;
    const events = (Array.isArray(doc) ? doc : (doc as { traceEvents: Ev[] }).traceEvents).filter((e: Ev) => e.ph === 'X') as Ev[];
    const marker = events.find((e) => e.name === 'moe_run/start')!;
    const end = Math.max(...events.map((e) => e.ts + (e.dur ?? 0)));
    const a2a = events.filter((e) => e.name === 'gloo:all_to_all').sort((x, y) => x.ts - y.ts);
    const share = (100 * union(a2a.map((e) => [Math.max(e.ts, marker.ts), e.ts + (e.dur ?? 0)]))) / (end - marker.ts);
    // arrival on the reference clock, as docs/contracts.md defines it (µs precision suffices here)
    const ref = (ts: number) => Number(BigInt(info.anchors.start_marker_local_ns!) + BigInt(info.clock_offset_ns)) / 1e3 + (ts - marker.ts);
    return { rank, share, starts: a2a.map((e) => ref(e.ts)) };
  }));

  // gloo all-to-all is the heaviest collective on every rank, with each rank's share in the report
  for (const r of perRank) {
    const c = summary.ranks[r.rank].collectives[0];
    expect(c.label).toBe('gloo all-to-all');
    expect(c.count).toBe(r.starts.length);
    expect(c.share_pct).toBeCloseTo(r.share, 1);
  }
  const first = summary.findings.find((f) => f.startsWith('gloo all-to-all '))!;
  expect(first).toBeDefined();
  for (const r of perRank) expect(first).toContain(`rank ${r.rank} ${percent(r.share)}`);
  expect(md).toContain(first);
  expect(html).toContain('gloo all-to-all');

  // the straggler sentence names the rank that really started most all-to-alls last
  const n = Math.min(...perRank.map((r) => r.starts.length));
  const lastCount = [0, 0];
  for (let k = 0; k < n; k++) lastCount[perRank[0].starts[k] > perRank[1].starts[k] ? 0 : 1]++;
  const sentence = summary.findings.find((f) => / arrives last at /.test(f) && f.includes('gloo all-to-all'))!;
  expect(sentence).toBeDefined();
  const [, named, said] = /^Rank (\d) arrives last at ([\d.]+)% of/.exec(sentence)!;
  // the rank that was last most often (either one on a tie), at the share of calls it was last at
  expect(lastCount[Number(named)]).toBe(Math.max(...lastCount));
  expect(Math.abs(Number(said) - (100 * lastCount[Number(named)]) / n)).toBeLessThanOrEqual(0.5); // printed rounded

  // MoE layers versus dense ones, from the module ranges
  const moe = summary.ranks.flatMap((r) => r.modules).filter((m) => m.name === 'TransformerDecoderLayer with MoE');
  expect(moe.reduce((a, m) => a + m.count, 0)).toBeGreaterThan(0);
  expect(summary.findings.some((f) => f.startsWith('A layer with MoE takes'))).toBe(true);
  expect(summary.ranks.every((r) => r.gpus.length === 0)).toBe(true);
}

describe('tiny-cpu report', () => {
  it('through the bootstrap: gloo all-to-all, each rank\'s share, true findings', async () => {
    const root = await tempFolder('tiny-report');
    const { config } = await loadConfig({ configPath: join(REPO, 'configs', 'tiny-cpu.yaml') });
    const run = new RunDir(join(root, 'tiny-cpu-20260101-000000'));
    await run.create();
    const results = await runRanks(2, { bootstrap: { runDir: run.root } });
    for (const r of results) expect(r.exitCode, r.all).toBe(0);
    await run.writeManifest(manifestFor('tiny-cpu', [0, 1].map((rank) => ({ rank, device: 'cpu' })), { config }));
    await writeRunReports(run.root);
    await checkTinyReport(run.root);
  });

  it('end to end: moe-run --config configs/tiny-cpu.yaml writes a report whose findings hold', async () => {
    const out = join(await tempFolder('tiny-e2e'), 'run');
    const r = await execa('node', [join(REPO, 'bin', 'moe-run'), '--config', join(REPO, 'configs', 'tiny-cpu.yaml'), '--out', out, '--quiet'], {
      cwd: REPO, reject: false, all: true, timeout: 300_000, env: { MOE_RUN_PYTHON: PYTHON },
    });
    expect(r.exitCode, r.all).toBe(0);
    await checkTinyReport(out);
  });
});

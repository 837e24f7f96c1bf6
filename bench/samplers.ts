// The samplers' own cost (issue 4): CPU time the launcher spends sampling, per minute of run, at the
// default 100 ms interval, against the target of 1% of one core (600 ms of CPU per minute).
//
// The samplers run alone in a child Node process (this file with --child), so that process.cpuUsage()
// counts them and nothing else: startSamplers with 4 GPUs of the fake nvidia-smi (test/fixtures,
// replaying a real H200 capture) and 4 dummy "rank" processes. nvidia-smi's own CPU (here the fake's) is
// another process's and is not counted, as on a real machine. Measured: both samplers, then each alone
// (where the cost is), and a baseline child that only wakes up every 100 ms: the floor of any 10 Hz
// sampler on the machine at hand (in a loaded VM one wake-up can cost half a millisecond of CPU).
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../src/plan/repo.js';
import { RunDir } from '../src/run-dir.js';
import { startSamplers } from '../src/sample/index.js';
import type { BenchResult } from './types.js';

const INTERVAL_MS = 100;
const RANKS = 4;
const SECONDS = Number(process.env.MOE_RUN_BENCH_SAMPLERS_S ?? 20);

type Mode = 'both' | 'nvidia-smi' | 'process' | 'timer';
interface ChildReport { cpuMs: number; wallMs: number; setupCpuMs: number; gpuRows: number; processRows: number }

/** In the child: run `mode` for SECONDS and report the CPU it used, steady state and setup (probe, topo, stop). */
async function child(mode: Mode, dir: string, pids: number[]): Promise<ChildReport> {
  const t0 = process.cpuUsage();
  const runDir = new RunDir(dir);
  const samplers = mode === 'timer' ? null : await startSamplers({
    runDir,
    sampling: { enabled: true, interval_ms: INTERVAL_MS, nvidia_smi: mode !== 'process', process: mode !== 'nvidia-smi' },
    gpuIndices: pids.map((_, i) => i),
    pids: () => new Map(pids.map((pid, rank) => [rank, pid])),
    now: () => process.hrtime.bigint(),
    log: () => {},
  });
  const t1 = process.cpuUsage();
  const wall0 = Date.now();
  if (samplers) await new Promise((r) => setTimeout(r, SECONDS * 1000));
  else while (Date.now() - wall0 < SECONDS * 1000) await new Promise((r) => setTimeout(r, INTERVAL_MS));
  const used = process.cpuUsage(t1);
  const wallMs = Date.now() - wall0;
  await samplers?.stop();
  const all = process.cpuUsage(t0);
  const rowsIn = async (path: string) => Math.max(0, (await readFile(path, 'utf8').catch(() => '')).split('\n').filter(Boolean).length - 1);
  return {
    cpuMs: (used.user + used.system) / 1000,
    wallMs,
    setupCpuMs: (all.user + all.system - used.user - used.system) / 1000,
    gpuRows: await rowsIn(runDir.nvidiaSmiCsv),
    processRows: await rowsIn(runDir.processCsv),
  };
}

async function measure(mode: Mode, pids: number[]): Promise<ChildReport & { perMinute: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'moe-run-bench-samplers-'));
  try {
    const r = await execa(process.execPath, [fileURLToPath(import.meta.url), '--child', mode, dir, ...pids.map(String)], {
      env: {
        PATH: `${join(repoRoot, 'test', 'fixtures', 'fake-nvidia-smi')}${delimiter}${process.env.PATH ?? ''}`,
        FAKE_NVIDIA_SMI_GPUS: String(RANKS),
      },
    });
    const rep = JSON.parse(r.stdout) as ChildReport;
    return { ...rep, perMinute: (rep.cpuMs / rep.wallMs) * 60_000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const pct = (msPerMinute: number) => `${((msPerMinute / 60_000) * 100).toFixed(2)}% of one core`;

export async function run(): Promise<BenchResult[]> {
  const dummies = Array.from({ length: RANKS }, () => execa('sleep', ['3600'], { reject: false }));
  try {
    const pids = dummies.map((d) => d.pid!);
    const both = await measure('both', pids);
    const gpu = await measure('nvidia-smi', pids);
    const proc = await measure('process', pids);
    const timer = await measure('timer', pids);
    const expectedRows = (both.wallMs / INTERVAL_MS) * RANKS;
    const row = (name: string, m: { perMinute: number }, note: string): BenchResult => ({
      name, value: m.perMinute, unit: 'ms CPU/min', baseline: timer.perMinute, ratio: m.perMinute / timer.perMinute,
      target: '≤ 600 ms/min (1% of one core)', note: `${pct(m.perMinute)}; ${note}`,
    });
    return [
      row('samplers, 100 ms, 4 GPUs + 4 ranks', both,
        `baseline: a bare 100 ms timer, ${pct(timer.perMinute)}; ${both.gpuRows} GPU rows ` +
        `(${((both.gpuRows / expectedRows) * 100).toFixed(0)}% of one per GPU per interval), ${both.processRows} process rows over ${(both.wallMs / 1000).toFixed(0)} s`),
      row('nvidia-smi sampler alone', gpu, 'reading and writing 4 rows per interval'),
      row('process sampler alone', proc, 'pidusage on 4 trees per interval, trees walked once a second'),
      { name: 'sampler setup and stop (probe, topo -m)', value: both.setupCpuMs, unit: 'ms CPU', note: 'once per run' },
    ];
  } finally {
    for (const d of dummies) d.kill();
    await Promise.all(dummies.map((d) => d.catch(() => {})));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--child') {
  const [mode, dir, ...pids] = process.argv.slice(3);
  console.log(JSON.stringify(await child(mode as Mode, dir, pids.map(Number))));
}

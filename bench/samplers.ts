// The samplers' own cost (issue 4): CPU time the launcher spends sampling, per minute of run, at the
// default 100 ms interval, against the target of 1% of one core (600 ms of CPU per minute).
//
// The samplers run alone in a child Node process (this file with --child), so that process.cpuUsage()
// counts them and nothing else: the nvidia-smi and process samplers of startSamplers, 4 GPUs of the fake
// nvidia-smi (test/fixtures, replaying a real H200 capture) and 4 dummy "rank" processes. nvidia-smi's
// own CPU (here the fake's) is another process's and is not counted, as on a real machine.
// Baseline: the same child doing nothing but wake up every 100 ms (the floor of any 10 Hz sampler on the
// machine at hand: in a loaded VM a wake-up alone can cost half a millisecond of CPU).
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

interface ChildReport { cpuMs: number; wallMs: number; startupCpuMs: number; gpuRows: number; processRows: number }

/** In the baseline child: a timer every interval, nothing else. */
async function idleChild(): Promise<{ cpuMs: number; wallMs: number }> {
  const t0 = process.cpuUsage();
  const wall0 = Date.now();
  while (Date.now() - wall0 < SECONDS * 1000) await new Promise((r) => setTimeout(r, INTERVAL_MS));
  const used = process.cpuUsage(t0);
  return { cpuMs: (used.user + used.system) / 1000, wallMs: Date.now() - wall0 };
}

/** In the child: start the samplers, let them run, report the CPU they used (steady state and startup). */
async function child(dir: string, pids: number[]): Promise<ChildReport> {
  const runDir = new RunDir(dir);
  const t0 = process.cpuUsage();
  const samplers = await startSamplers({
    runDir,
    sampling: { enabled: true, interval_ms: INTERVAL_MS, nvidia_smi: true, process: true },
    gpuIndices: pids.map((_, i) => i),
    pids: () => new Map(pids.map((pid, rank) => [rank, pid])),
    now: () => process.hrtime.bigint(),
    log: () => {},
  });
  const t1 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const used = process.cpuUsage(t1);
  const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
  await samplers.stop();
  const startup = process.cpuUsage(t0);
  const rowsIn = async (path: string) => (await readFile(path, 'utf8')).split('\n').filter(Boolean).length - 1;
  return {
    cpuMs: (used.user + used.system) / 1000,
    wallMs,
    startupCpuMs: (startup.user + startup.system - used.user - used.system) / 1000,
    gpuRows: await rowsIn(runDir.nvidiaSmiCsv),
    processRows: await rowsIn(runDir.processCsv),
  };
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'moe-run-bench-samplers-'));
  const dummies = Array.from({ length: RANKS }, () => execa('sleep', ['3600'], { reject: false }));
  const self = fileURLToPath(import.meta.url);
  try {
    const r = await execa(process.execPath, [self, '--child', dir, ...dummies.map((d) => String(d.pid))], {
      env: {
        PATH: `${join(repoRoot, 'test', 'fixtures', 'fake-nvidia-smi')}${delimiter}${process.env.PATH ?? ''}`,
        FAKE_NVIDIA_SMI_GPUS: String(RANKS),
      },
    });
    const rep = JSON.parse(r.stdout) as ChildReport;
    const idle = JSON.parse((await execa(process.execPath, [self, '--idle-child'])).stdout) as { cpuMs: number; wallMs: number };
    const perMinute = (rep.cpuMs / rep.wallMs) * 60_000;
    const idlePerMinute = (idle.cpuMs / idle.wallMs) * 60_000;
    const expectedRows = (rep.wallMs / INTERVAL_MS) * RANKS;
    return [
      {
        name: 'sampler CPU per minute of run (100 ms, 4 GPUs, 4 ranks)',
        value: perMinute,
        unit: 'ms CPU/min',
        baseline: idlePerMinute,
        ratio: perMinute / idlePerMinute,
        target: '≤ 600 ms/min (1% of one core)',
        note: `${((perMinute / 60_000) * 100).toFixed(2)}% of one core over ${(rep.wallMs / 1000).toFixed(0)} s; ` +
          `baseline: a bare 100 ms timer, ${((idlePerMinute / 60_000) * 100).toFixed(2)}%; ` +
          `${rep.gpuRows} GPU rows (${((rep.gpuRows / expectedRows) * 100).toFixed(0)}% of 1 per GPU per interval), ${rep.processRows} process rows`,
      },
      {
        name: 'sampler start and stop (nvidia-smi probe, topo -m)',
        value: rep.startupCpuMs,
        unit: 'ms CPU',
        note: 'once per run',
      },
    ];
  } finally {
    for (const d of dummies) d.kill();
    await Promise.all(dummies.map((d) => d.catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--child') {
    const [dir, ...pids] = process.argv.slice(3);
    console.log(JSON.stringify(await child(dir, pids.map(Number))));
  } else if (process.argv[2] === '--idle-child') {
    console.log(JSON.stringify(await idleChild()));
  }
}

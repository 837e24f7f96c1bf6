// Sampling in a whole run: `moe-run --config configs/tiny-cpu.yaml` (2 real tinymoe ranks on the CPU),
// once with the fake nvidia-smi (2 GPUs, replaying the H200 capture) first on PATH, once with no
// nvidia-smi at all. What issue 4 asks of a run: GPU rows about every interval for each GPU over the
// run, one process series per rank with a plausible RSS, and a run without nvidia-smi that succeeds
// and says why it has no GPU samples.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RunDir, type Manifest } from '../../src/run-dir.js';
import { ensureBuilt } from '../cli/cli.js';
import { startMoeRun } from '../launch/procs.js';
import { PATH_WITH_FAKE, readSamples, repoRoot } from './helpers.js';

beforeAll(() => ensureBuilt(), 300_000);

const savedEnv = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
});

async function tinyRun(): Promise<{ runDir: RunDir; manifest: Manifest }> {
  const out = join(mkdtempSync(join(tmpdir(), 'moe-run-e2e-sampling-')), 'run');
  const moe = startMoeRun(repoRoot, ['--config', 'configs/tiny-cpu.yaml', '--out', out, '--quiet']);
  const code = await moe.exit;
  expect(code, moe.stderr()).toBe(0);
  const runDir = new RunDir(out);
  return { runDir, manifest: await runDir.readManifest() };
}

describe('sampling in a tiny-cpu run', () => {
  it('with nvidia-smi: GPU rows about every interval per GPU, one process series per rank', async () => {
    process.env.PATH = PATH_WITH_FAKE;
    process.env.FAKE_NVIDIA_SMI_GPUS = '2';
    const { runDir, manifest } = await tinyRun();
    const intervalMs = manifest.config.sampling.interval_ms;
    expect(manifest.notes.filter((n) => /nvidia-smi/.test(n))).toEqual([]);
    expect((manifest.host as { gpus: unknown[] }).gpus).toHaveLength(2);
    expect(readFileSync(runDir.gpuTopology, 'utf8')).toMatch(/GPU0/);

    const ranksFrom = BigInt(manifest.timings.ranks.start_ns);
    const ranksTo = BigInt(manifest.timings.ranks.end_ns!);
    const gpu = (await readSamples(runDir.nvidiaSmiCsv)).rows;
    for (const index of ['0', '1']) {
      const recv = gpu.filter((r) => r.index === index).map((r) => BigInt(r.recv_ns));
      const spanMs = Number(recv[recv.length - 1] - recv[0]) / 1e6;
      // the rows cover the ranks' run (nvidia-smi starts before the first rank, stops after the last)…
      expect(recv[0] <= ranksFrom + 2_000_000_000n && recv[recv.length - 1] >= ranksTo - 2_000_000_000n).toBe(true);
      // …about one per interval (a broad band: the machine is shared)
      expect(recv.length).toBeGreaterThan(0.5 * (spanMs / intervalMs));
      expect(recv.length).toBeLessThan(1.5 * (spanMs / intervalMs) + 2);
    }

    const proc = (await readSamples(runDir.processCsv)).rows;
    for (const rank of manifest.ranks) {
      const series = proc.filter((r) => r.rank === String(rank.rank));
      expect(series.length).toBeGreaterThan(3);
      expect(series.every((r) => r.pid === String(rank.pid))).toBe(true);
      // a Python that has imported torch: tens to hundreds of MB at its peak
      const peak = Math.max(...series.map((r) => Number(r.rss_bytes)));
      expect(peak).toBeGreaterThan(30e6);
      expect(peak).toBeLessThan(2e9);
    }
  }, 300_000);

  it('without nvidia-smi: the run succeeds and says why there are no GPU samples', async () => {
    process.env.PATH = (savedEnv.PATH ?? '').split(delimiter).filter((d) => d && !existsSync(join(d, 'nvidia-smi'))).join(delimiter);
    const { runDir, manifest } = await tinyRun();
    expect(manifest.status).toBe('ok');
    expect(manifest.notes).toContain('nvidia-smi not found on PATH: no GPU samples (samples/nvidia-smi.csv not written)');
    expect(existsSync(runDir.nvidiaSmiCsv)).toBe(false);
    expect(existsSync(runDir.processCsv)).toBe(true);
    // the report says that GPU counters are missing (why is the manifest's note above)
    if (existsSync(runDir.reportMd)) expect(readFileSync(runDir.reportMd, 'utf8')).toMatch(/nvidia-smi/);
  }, 300_000);
});

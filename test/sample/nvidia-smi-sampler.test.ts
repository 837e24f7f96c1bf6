// The nvidia-smi sampler through startSamplers, with the fake nvidia-smi (test/fixtures/fake-nvidia-smi,
// replaying ../shared captures) first on PATH: real child processes, real pipes, real restarts.
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startSamplers, type Samplers } from '../../src/sample/index.js';
import { DEFAULT_FIELDS, csvColumns } from '../../src/sample/nvidia-smi.js';
import { RunDir } from '../../src/run-dir.js';
import { PATH_WITH_FAKE, SHARED_CAPTURES, captureSection, lineCount, nowNs, readSamples, waitFor } from './helpers.js';

const INTERVAL_MS = 100;
const savedEnv = { ...process.env };
let runDir: RunDir;
let logged: string[];
let samplers: Samplers | null;

beforeEach(() => {
  runDir = new RunDir(mkdtempSync(join(tmpdir(), 'moe-run-sample-')));
  logged = [];
  samplers = null;
  process.env.PATH = PATH_WITH_FAKE;
});

afterEach(async () => {
  await samplers?.stop();
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
});

async function start(over: { fields?: string[]; gpus?: number[]; process?: boolean } = {}): Promise<Samplers> {
  samplers = await startSamplers({
    runDir,
    sampling: { enabled: true, interval_ms: INTERVAL_MS, nvidia_smi: true, nvidia_smi_fields: over.fields, process: over.process ?? false },
    gpuIndices: over.gpus ?? [],
    pids: () => new Map(),
    now: nowNs,
    log: (line) => logged.push(line),
  });
  return samplers;
}

describe('nvidia-smi sampler', () => {
  it('writes a row per GPU about every interval, with the default fields, timestamps in ns and the topology', async () => {
    process.env.FAKE_NVIDIA_SMI_GPUS = '3';
    const s = await start({ gpus: [0, 2] });
    await waitFor(async () => (await lineCount(runDir.nvidiaSmiCsv)) > 30, '30 rows');
    await s.stop();
    expect(s.notes).toEqual([]);

    const { header, rows } = await readSamples(runDir.nvidiaSmiCsv);
    expect(header).toEqual(['recv_ns', 'host', ...csvColumns(DEFAULT_FIELDS)]);
    const byGpu = new Map<string, Record<string, string>[]>();
    for (const r of rows) byGpu.set(r.index, [...(byGpu.get(r.index) ?? []), r]);
    expect([...byGpu.keys()].sort()).toEqual(['0', '2']); // only the GPUs asked for
    expect(new Set(rows.map((r) => r.uuid)).size).toBe(2);

    // rows per GPU against the span the rows cover, on the samplers' own clock: a broad band
    for (const series of byGpu.values()) {
      const recv = series.map((r) => BigInt(r.recv_ns));
      for (let i = 1; i < recv.length; i++) expect(recv[i] >= recv[i - 1]).toBe(true);
      const spanMs = Number(recv[recv.length - 1] - recv[0]) / 1e6;
      const expected = spanMs / INTERVAL_MS + 1;
      expect(series.length).toBeGreaterThan(0.5 * expected);
      expect(series.length).toBeLessThan(1.5 * expected + 2);
    }
    for (const r of rows) {
      // nvidia-smi's own stamp (host local time, ms) and the receive time are on the same host clock
      expect(Math.abs(Number(BigInt(r.timestamp_ns) - BigInt(r.recv_ns))) / 1e9).toBeLessThan(5);
      for (const f of ['utilization.gpu', 'memory.used', 'memory.total', 'power.draw', 'clocks.sm', 'temperature.gpu']) {
        expect(r[f] === '' || Number.isFinite(Number(r[f])), `${f}=${r[f]}`).toBe(true);
      }
    }
    const topology = readFileSync(runDir.gpuTopology, 'utf8');
    expect(topology.trimEnd()).toBe(captureSection(join(SHARED_CAPTURES, 'linux-x86_64__nvidia-h200__590.48.01.txt'), /topo -m/).join('\n'));
  });

  it('drops a field nvidia-smi refuses, with a note, and samples the rest', async () => {
    const s = await start({ fields: ['timestamp', 'index', 'no.such.field', 'power.draw'] });
    await waitFor(async () => (await lineCount(runDir.nvidiaSmiCsv)) > 3, 'rows');
    await s.stop();
    expect(s.notes.join('\n')).toMatch(/no\.such\.field.*is not a valid field to query/);
    const { header, rows } = await readSamples(runDir.nvidiaSmiCsv);
    expect(header).toEqual(['recv_ns', 'host', 'timestamp', 'timestamp_ns', 'index', 'power.draw']);
    expect(rows.every((r) => Number.isFinite(Number(r['power.draw'])))).toBe(true);
  });

  it('falls back to clocks_throttle_reasons.active on a driver that does not know clocks_event_reasons.active', async () => {
    process.env.FAKE_NVIDIA_SMI_REFUSE = 'clocks_event_reasons.active';
    process.env.FAKE_NVIDIA_SMI_CAPTURE = 'linux-x86_64__nvidia-geforce-rtx-2080-super__595.71.05.txt';
    const s = await start();
    await waitFor(async () => (await lineCount(runDir.nvidiaSmiCsv)) > 2, 'rows');
    await s.stop();
    expect(s.notes.join('\n')).toMatch(/clocks_event_reasons\.active.*former name clocks_throttle_reasons\.active/);
    const { header, rows } = await readSamples(runDir.nvidiaSmiCsv);
    expect(header).toContain('clocks_throttle_reasons.active');
    expect(header).not.toContain('clocks_event_reasons.active');
    expect(rows.every((r) => /^0x[0-9A-F]+$/.test(r['clocks_throttle_reasons.active']))).toBe(true);
  });

  it('restarts nvidia-smi when it exits during the run and notes the gap', async () => {
    process.env.FAKE_NVIDIA_SMI_EXIT_AFTER = '5';
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const s = await start();
    await waitFor(async () => (await lineCount(runDir.nvidiaSmiCsv)) > 11, 'rows from a third nvidia-smi');
    await s.stop();
    expect(readdirSync('/proc/self/fd').length - fdsBefore).toBeLessThan(5); // each nvidia-smi's pipes closed
    const gaps = s.notes.filter((n) => /restarted; no GPU samples from/.test(n))
      .map((n) => /from (\d+) to (\d+) ns/.exec(n)!.slice(1).map(BigInt));
    expect(gaps.length).toBeGreaterThanOrEqual(2);
    expect(s.notes[0]).toMatch(/nvidia-smi exited \(exit code 1: fake nvidia-smi: exiting after 5 rows/);
    const recv = (await readSamples(runDir.nvidiaSmiCsv)).rows.map((r) => BigInt(r.recv_ns));
    for (const [from, to] of gaps) {
      expect(to > from).toBe(true);
      expect(recv).toContain(from); // the gap runs from the last row before the exit…
      expect(recv).toContain(to); // …to the first row after the restart
      expect(recv.some((t) => t > from && t < to)).toBe(false);
    }
    expect(logged.some((l) => /restarting in \d+ ms/.test(l))).toBe(true);
  });

  it('says why there are no GPU samples when nvidia-smi cannot sample the GPUs asked for', async () => {
    const s = await start({ gpus: [7] });
    await s.stop();
    expect(s.notes).toEqual([expect.stringMatching(/nvidia-smi --query-gpu failed \(exit code 6\): No devices were found; no GPU samples/)]);
    expect(existsSync(runDir.nvidiaSmiCsv)).toBe(false);
  });

  it('without nvidia-smi on PATH: a note, no GPU samples, the process samples still written', async () => {
    process.env.PATH = mkdtempSync(join(tmpdir(), 'moe-run-empty-path-'));
    const s = await start({ process: true });
    await s.stop();
    expect(s.notes).toEqual(['nvidia-smi not found on PATH: no GPU samples (samples/nvidia-smi.csv not written)']);
    expect(existsSync(runDir.nvidiaSmiCsv)).toBe(false);
    expect(existsSync(runDir.processCsv)).toBe(true);
  });
});

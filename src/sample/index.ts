// The samplers as the launcher uses them (DESIGN.md "The flow": launch → samplers): started once the
// run directory exists, stopped once every rank has ended. What could not be sampled is never an error:
// it is a note for the manifest and the report, and the run goes on.
import type { RunConfig } from '../config/schema.js';
import type { RunDir } from '../run-dir.js';
import { DEFAULT_FIELDS, NvidiaSmiSampler, findNvidiaSmi, probeFields, saveTopology } from './nvidia-smi.js';
import { ProcessSampler } from './process.js';

export { collectHostInventory } from './host.js';

/** How long startSamplers waits for nvidia-smi's first row. */
const FIRST_ROW_WAIT_MS = 10_000;

export interface SamplerOptions {
  runDir: RunDir;
  sampling: RunConfig['sampling'];
  /** GPUs to sample (nvidia-smi indices); empty: every GPU nvidia-smi sees */
  gpuIndices: number[];
  /** rank → pid, read at every tick (ranks start and end while sampling runs) */
  pids: () => Map<number, number>;
  /** the reference clock, epoch ns */
  now: () => bigint;
  /** a line for launcher.log */
  log: (line: string) => void;
}

export interface Samplers {
  /** Stops every sampler and closes its CSV; `notes` is complete once it has resolved. */
  stop(): Promise<void>;
  /** for the manifest's notes: no nvidia-smi, a refused field, a gap in the GPU samples… (grows while running) */
  notes: string[];
}

/**
 * Starts the nvidia-smi and process samplers as the config's `sampling` section asks, writing
 * samples/nvidia-smi.csv, samples/process.csv and samples/gpu-topology.txt. Resolves once they run:
 * nvidia-smi has been probed for its fields and its first row has arrived (a second or so), the
 * process sampler has started.
 */
export async function startSamplers(opts: SamplerOptions): Promise<Samplers> {
  const { runDir, sampling, log } = opts;
  const notes: string[] = [];
  const note = (line: string) => {
    notes.push(line);
    log(`samples: ${line}`);
  };
  if (!sampling.enabled) return { stop: async () => {}, notes };
  await runDir.create();

  const running: { stop(): Promise<void> }[] = [];
  if (sampling.nvidia_smi) {
    const gpu = await startNvidiaSmi(opts, note);
    if (gpu) running.push(gpu);
  }
  if (sampling.process) {
    const proc = new ProcessSampler({ pids: opts.pids, intervalMs: sampling.interval_ms, csvPath: runDir.processCsv, now: opts.now, log });
    await proc.start();
    running.push(proc);
  }
  return {
    notes,
    stop: async () => {
      await Promise.all(running.map((s) => s.stop()));
    },
  };
}

async function startNvidiaSmi(opts: SamplerOptions, note: (line: string) => void): Promise<NvidiaSmiSampler | null> {
  const { runDir, sampling, gpuIndices } = opts;
  const bin = findNvidiaSmi();
  if (!bin) {
    note('nvidia-smi not found on PATH: no GPU samples (samples/nvidia-smi.csv not written)');
    return null;
  }
  const probe = await probeFields(bin, sampling.nvidia_smi_fields ?? DEFAULT_FIELDS, gpuIndices);
  probe.notes.forEach(note);
  if (!probe.fields) return null;
  const topologyNote = await saveTopology(bin, runDir.gpuTopology);
  if (topologyNote) note(topologyNote);
  const sampler = new NvidiaSmiSampler({
    bin, fields: probe.fields, gpuIds: gpuIndices, intervalMs: sampling.interval_ms,
    csvPath: runDir.nvidiaSmiCsv, now: opts.now, log: opts.log, note,
  });
  sampler.start();
  // the ranks start once GPU rows flow, so that the timeline has them from its beginning; a slow
  // nvidia-smi delays the run by at most FIRST_ROW_WAIT_MS
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([sampler.started, new Promise((resolve) => (timer = setTimeout(resolve, FIRST_ROW_WAIT_MS)))]);
  clearTimeout(timer);
  return sampler;
}

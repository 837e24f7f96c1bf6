// The samplers beside a node's ranks (src/sample: nvidia-smi, each rank's process tree), in the shape
// the launcher (and a multi-node agent) drives them: started before the first rank, stopped after the last.
import type { RunConfig } from '../config/schema.js';
import type { RunPlan } from '../plan/types.js';
import type { RunDir } from '../run-dir.js';
import { startSamplers } from '../sample/index.js';
import type { ReferenceClock } from './clock.js';

export interface Samplers {
  stop(): Promise<void>;
}

export interface SamplerContext {
  runDir: RunDir;
  config: RunConfig;
  plan: RunPlan;
  clock: ReferenceClock;
  /** rank → pid, filled in as the ranks are spawned */
  pids: ReadonlyMap<number, number>;
  /** a line for launcher.log */
  log: (line: string) => void;
  /** something a reader of the run should know (no nvidia-smi…) → manifest.notes */
  note: (text: string) => void;
}

export async function startRankSamplers(ctx: SamplerContext): Promise<Samplers> {
  const samplers = await startSamplers({
    runDir: ctx.runDir,
    sampling: ctx.config.sampling,
    gpuIndices: gpuIndices(ctx.plan),
    pids: () => new Map(ctx.pids),
    now: () => ctx.clock.nowNs(),
    log: ctx.log,
  });
  return {
    stop: async () => {
      await samplers.stop();
      for (const text of samplers.notes) ctx.note(text);
    },
  };
}

/** The GPUs this node's ranks use (nvidia-smi indices); none for a CPU run, which then samples every GPU seen. */
export function gpuIndices(plan: RunPlan): number[] {
  return plan.ranks.map((r) => /^cuda:(\d+)$/.exec(r.device)).filter((m) => m !== null).map((m) => Number(m[1]));
}

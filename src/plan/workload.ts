// What a workload adapter (fairseq.ts, tinymoe.ts, command.ts) gives the plan: how one rank starts
// under the bootstrap, on which device, and which classes/functions the profiler hooks by default.
import type { ModuleHook } from '../config/schema.js';

/** Where a rank sits; the adapter turns it into distributed flags. */
export interface RankContext {
  rank: number;
  localRank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
}

export interface WorkloadRank {
  /** arguments after `python <bootstrap>`: `--entry MODULE:FUNCTION -- ARGS…`, or `[-m MODULE] -- ARGS…` */
  bootstrapArgs: string[];
  /** "cuda:D" or "cpu" */
  device: string;
  /** working directory, when the workload needs one */
  cwd?: string;
  /** directories put in front of PYTHONPATH */
  pythonPath: string[];
}

/** The profile section's hooks/region/step when the config leaves them out. */
export interface ProfileDefaults {
  hooks: ModuleHook[];
  region?: string;
  step?: string;
}

/** fairseq's own flags for one process per rank (fairseq/dataclass/configs.py, DistributedTrainingConfig). */
export function distributedArgs(ctx: RankContext, backend: string): string[] {
  const host = ctx.masterAddr.includes(':') ? `[${ctx.masterAddr}]` : ctx.masterAddr; // IPv6 literal
  return [
    '--distributed-init-method', `tcp://${host}:${ctx.masterPort}`,
    '--distributed-world-size', String(ctx.worldSize),
    '--distributed-rank', String(ctx.rank),
    '--device-id', String(ctx.localRank),
    // one process per rank, started by moe-run: fairseq must not spawn its own children
    '--distributed-no-spawn',
    '--distributed-backend', backend,
  ];
}

// The plan: RunConfig + the facts of this node → one RankPlan per local rank. Pure (no processes,
// no sockets), so `--dry-run` shows exactly what a real run would start.
import { delimiter, resolve } from 'node:path';
import type { ProfileConfig, RunConfig } from '../config/schema.js';
import { RunDir } from '../run-dir.js';
import { commandDefaults, commandRank } from './command.js';
import { fairseqDefaults, fairseqRank } from './fairseq.js';
import { bootstrapPath } from './repo.js';
import { tinymoeDefaults, tinymoeRank } from './tinymoe.js';
import type { NodeFacts, RankPlan, RunPlan } from './types.js';
import type { ProfileDefaults, RankContext, WorkloadRank } from './workload.js';

export type { NodeFacts, RankPlan, RunPlan } from './types.js';
export { freePort } from './ports.js';
export { defaultRunDir, gatherFacts, type FactsOptions } from './facts.js';
export { resolvePython } from './python.js';
export { formatDryRun, maskEnv } from './show.js';

/**
 * One RankPlan per rank of this node. The interpreter is `config.python`, else `facts.python`
 * (resolve it first with resolvePython: finding one with torch runs processes, which a plan must not).
 */
export function planRun(config: RunConfig, facts: NodeFacts): RunPlan {
  const python = config.python ?? facts.python;
  if (python === undefined) throw new Error('planRun: no interpreter; set facts.python from resolvePython(config)');
  const worldSize = facts.nnodes * facts.ranksPerNode;
  const runDir = new RunDir(facts.runDir);
  const profile = JSON.stringify(resolveProfile(config.profile, profileDefaults(config)));

  const ranks: RankPlan[] = [];
  for (let localRank = 0; localRank < facts.ranksPerNode; localRank++) {
    const rank = facts.nodeRank * facts.ranksPerNode + localRank;
    const ctx: RankContext = { rank, localRank, worldSize, masterAddr: facts.masterAddr, masterPort: facts.masterPort };
    const w = workloadRank(config, ctx);
    ranks.push({
      rank,
      localRank,
      nodeRank: facts.nodeRank,
      worldSize,
      device: w.device,
      argv: [python, bootstrapPath, ...w.bootstrapArgs],
      env: rankEnv(config, facts, ctx, w, runDir.rankDir(rank), profile),
      cwd: w.cwd ?? process.cwd(),
      rankDir: runDir.rankDir(rank),
      stdoutPath: runDir.stdout(rank),
      stderrPath: runDir.stderr(rank),
    });
  }
  return { nnodes: facts.nnodes, nodeRank: facts.nodeRank, worldSize, masterAddr: facts.masterAddr, masterPort: facts.masterPort, ranks };
}

function workloadRank(config: RunConfig, ctx: RankContext): WorkloadRank {
  const w = config.workload;
  switch (w.kind) {
    case 'fairseq-eval-lm': return fairseqRank(w, ctx);
    case 'tinymoe': return tinymoeRank(w, ctx);
    case 'command': return commandRank(w, ctx);
  }
}

export function profileDefaults(config: RunConfig): ProfileDefaults {
  switch (config.workload.kind) {
    case 'fairseq-eval-lm': return fairseqDefaults;
    case 'tinymoe': return tinymoeDefaults;
    case 'command': return commandDefaults;
  }
}

/** The profile section as the bootstrap reads it (MOE_RUN_PROFILE): hooks/region/step filled in. */
export function resolveProfile(profile: ProfileConfig, defaults: ProfileDefaults): ProfileConfig {
  return {
    ...profile,
    hooks: profile.hooks ?? defaults.hooks,
    region: profile.region ?? defaults.region,
    step: profile.step ?? defaults.step,
  };
}

function rankEnv(config: RunConfig, facts: NodeFacts, ctx: RankContext, w: WorkloadRank, rankDir: string, profile: string): Record<string, string> {
  // The workload's directories go in front of whatever PYTHONPATH the rank would otherwise get.
  const inherited = config.env.PYTHONPATH ?? process.env.PYTHONPATH;
  const pythonPath = [...w.pythonPath, ...(inherited ? [inherited] : [])].join(delimiter);
  return {
    PYTHONUNBUFFERED: '1',
    ...config.env,
    ...(pythonPath ? { PYTHONPATH: pythonPath } : {}),
    // as torchrun sets them, for code that reads the environment rather than fairseq's flags
    RANK: String(ctx.rank),
    LOCAL_RANK: String(ctx.localRank),
    WORLD_SIZE: String(ctx.worldSize),
    LOCAL_WORLD_SIZE: String(facts.ranksPerNode),
    MASTER_ADDR: facts.masterAddr,
    MASTER_PORT: String(facts.masterPort),
    // the bootstrap's contract (docs/contracts.md)
    MOE_RUN_RANK: String(ctx.rank),
    MOE_RUN_WORLD_SIZE: String(ctx.worldSize),
    MOE_RUN_RANK_DIR: resolve(rankDir),
    MOE_RUN_PROFILE: profile,
    ...(facts.rendezvous ? {
      MOE_RUN_RDZV: `${facts.rendezvous.host}:${facts.rendezvous.port}`,
      MOE_RUN_TOKEN: facts.rendezvous.token,
    } : {}),
  };
}

// Any Python program as the rank: a script path, or a module (`module: true`, like python -m).
// It gets torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR…) but no arguments added, and no
// default hooks: the profile section names what to hook, else the whole program is the region.
import type { z } from 'zod';
import type { commandWorkload } from '../config/schema.js';
import type { ProfileDefaults, RankContext, WorkloadRank } from './workload.js';

type CommandWorkload = z.infer<typeof commandWorkload>;

export const commandDefaults: ProfileDefaults = { hooks: [] };

export function commandRank(w: CommandWorkload, ctx: RankContext): WorkloadRank {
  const [first, ...rest] = w.argv;
  return {
    bootstrapArgs: w.module ? ['-m', first, '--', ...rest] : ['--', first, ...rest],
    device: w.device === 'cpu' ? 'cpu' : `cuda:${ctx.localRank}`,
    pythonPath: [],
  };
}

// `moe-run --dry-run`: the plan a real run would execute, without starting anything. The master
// port is chosen as a real run would choose it; there is no rendezvous (so no token) to show.
import type { RunConfig } from '../config/schema.js';
import { planRun } from './index.js';
import { defaultRunDir, gatherFacts } from './facts.js';
import { resolvePython } from './python.js';
import { formatDryRun, maskPlan } from './show.js';

export interface DryRunOptions {
  outDir?: string;
  json?: boolean;
  nnodes?: number;
  nodeRank?: number;
  /** node 0's address, from --rdzv HOST:PORT or Slurm */
  masterAddr?: string;
  hostname?: string;
}

export async function dryRun(config: RunConfig, opts: DryRunOptions): Promise<string> {
  const python = await resolvePython(config.python);
  const facts = await gatherFacts(config, {
    python: python.python,
    runDir: defaultRunDir(config, opts.outDir),
    nnodes: opts.nnodes,
    nodeRank: opts.nodeRank,
    masterAddr: opts.masterAddr,
    hostname: opts.hostname,
  });
  const plan = planRun(config, facts);
  // formatDryRun masks the token itself; the JSON is the plan as it is, so mask it here
  return opts.json ? JSON.stringify(maskPlan(plan), null, 2) + '\n' : `# python: ${python.python}: ${python.how}\n${formatDryRun(plan)}`;
}

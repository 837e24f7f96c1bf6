// `--dry-run`: every rank's command line, shell-quoted so it can be pasted into a terminal, with
// its environment additions as an `env K=V …` prefix. The join token is never shown.
import type { RankPlan, RunPlan } from './types.js';

const SECRET_KEYS = new Set(['MOE_RUN_TOKEN']);

export function maskEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, SECRET_KEYS.has(k) ? '***' : v]));
}

export function maskPlan(plan: RunPlan): RunPlan {
  return { ...plan, ranks: plan.ranks.map((r) => ({ ...r, env: maskEnv(r.env) })) };
}

/** As is when plainly safe; double quotes for a word with ' but nothing bash expands; else single quotes. */
export function shellQuote(word: string): string {
  if (/^[\w@%+=:,./-]+$/.test(word)) return word;
  if (word.includes("'") && !/[$`"\\!]/.test(word)) return `"${word}"`;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function formatRank(r: RankPlan): string {
  const env = Object.entries(maskEnv(r.env)).map(([k, v]) => `  ${k}=${shellQuote(v)}`);
  return [
    `# rank ${r.rank} (node ${r.nodeRank}, local rank ${r.localRank}, ${r.device}); logs in ${r.rankDir}`,
    `cd ${shellQuote(r.cwd)} && env \\`,
    ...env.map((line) => `${line} \\`),
    `  ${r.argv.map(shellQuote).join(' ')}`,
  ].join('\n');
}

export function formatDryRun(plan: RunPlan): string {
  const head = `# ${plan.ranks.length} rank(s) on node ${plan.nodeRank} of ${plan.nnodes}; world size ${plan.worldSize}; ` +
    `torch.distributed at ${plan.masterAddr}:${plan.masterPort}`;
  return [head, ...plan.ranks.map(formatRank)].join('\n\n') + '\n';
}

// workloads/tinymoe: the small MoE LM shaped like fairseq (same class names, same eval_lm flags),
// so the same hooks, region and step apply and the demo and tests exercise the real paths.
import type { z } from 'zod';
import type { tinymoeWorkload } from '../config/schema.js';
import { pyRepr, type PyValue } from './pyrepr.js';
import { workloadsDir } from './repo.js';
import { distributedArgs, type ProfileDefaults, type RankContext, type WorkloadRank } from './workload.js';

type TinymoeWorkload = z.infer<typeof tinymoeWorkload>;

export const tinymoeDefaults: ProfileDefaults = {
  hooks: [
    { target: 'tinymoe.models:TransformerDecoder', moe_suffix: false },
    { target: 'tinymoe.models:TransformerDecoderLayer', moe_suffix: true },
    { target: 'tinymoe.multihead_attention:MultiheadAttention', moe_suffix: false },
    { target: 'tinymoe.moe_layer:MOELayer', moe_suffix: false },
  ],
  region: 'tinymoe.eval_lm:eval_lm',
  step: 'tinymoe.sequence_scorer:SequenceScorer.generate',
};

export function tinymoeRank(w: TinymoeWorkload, ctx: RankContext): WorkloadRank {
  const cpu = w.device === 'cpu';
  const args = [
    ...(cpu ? ['--cpu'] : []),
    ...(w.fp16 ? ['--fp16'] : []),
    '--tokens-per-sample', String(w.tokens_per_sample),
    '--batch-size', String(w.batch_size),
    '--max-valid-steps', String(w.max_valid_steps),
    '--num-layers', String(w.num_layers),
    '--embed-dim', String(w.embed_dim),
    '--ffn-dim', String(w.ffn_dim),
    '--attention-heads', String(w.heads),
    '--vocab-size', String(w.vocab_size),
    '--num-experts', String(w.num_experts),
    '--moe-freq', String(w.moe_freq),
    '--seed', String(w.seed),
    '--model-overrides', pyRepr(w.model_overrides as PyValue),
    ...w.extra_args,
    ...distributedArgs(ctx, w.backend ?? (cpu ? 'gloo' : 'nccl')),
  ];
  return {
    bootstrapArgs: ['--entry', 'tinymoe.eval_lm:cli_main', '--', ...args],
    device: cpu ? 'cpu' : `cuda:${ctx.localRank}`,
    pythonPath: [workloadsDir],
  };
}

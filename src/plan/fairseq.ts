// fairseq's eval_lm (the `moe` branch), one process per GPU.
//
// VERIFIED against facebookresearch/fairseq, branch moe (ebea0072, Dec 2021):
// - entry: fairseq_cli/eval_lm.py `cli_main()` parses sys.argv with options.get_eval_lm_parser() and
//   calls distributed_utils.call_main; with --distributed-init-method and --distributed-no-spawn that is
//   distributed_main(device_id, …) in this process (fairseq/distributed/utils.py call_main), no spawn.
// - flags: --distributed-world-size, --distributed-rank, --distributed-backend, --distributed-init-method,
//   --device-id, --distributed-no-spawn (fairseq/dataclass/configs.py DistributedTrainingConfig);
//   --batch-size, --gen-subset, --max-valid-steps (DatasetConfig; EvalLMConfig declares max_valid_steps
//   again, argparse keeps the first); --fp16 (CommonConfig); --path, --model-overrides, --is-moe
//   (CommonEvalConfig); --output-word-probs (EvalLMConfig); --tokens-per-sample, --sample-break-mode
//   (fairseq/tasks/language_modeling.py). main() eval()s --model-overrides, so it is a Python literal.
// - region: fairseq_cli/eval_lm.py `eval_lm(models, …)`, looked up as a module global by eval_dataset,
//   so replacing the module attribute reaches it; it runs after the model is loaded.
// - step: fairseq/sequence_scorer.py `SequenceScorer.generate`, called once per batch in eval_lm.
// - hooks: TransformerDecoder (fairseq/models/transformer.py, used by transformer_lm),
//   TransformerDecoderLayer with `self.is_moe_layer` (fairseq/modules/transformer_layer.py),
//   MultiheadAttention (fairseq/modules/multihead_attention.py), MOELayer (fairseq/modules/moe/moe_layer.py,
//   its two all-to-alls in forward).
import { resolve } from 'node:path';
import type { z } from 'zod';
import type { fairseqWorkload } from '../config/schema.js';
import { pyRepr, type PyValue } from './pyrepr.js';
import { distributedArgs, type ProfileDefaults, type RankContext, type WorkloadRank } from './workload.js';

type FairseqWorkload = z.infer<typeof fairseqWorkload>;

export const fairseqDefaults: ProfileDefaults = {
  hooks: [
    { target: 'fairseq.models.transformer:TransformerDecoder', moe_suffix: false },
    { target: 'fairseq.modules.transformer_layer:TransformerDecoderLayer', moe_suffix: true },
    { target: 'fairseq.modules.multihead_attention:MultiheadAttention', moe_suffix: false },
    { target: 'fairseq.modules.moe.moe_layer:MOELayer', moe_suffix: false },
  ],
  region: 'fairseq_cli.eval_lm:eval_lm',
  step: 'fairseq.sequence_scorer:SequenceScorer.generate',
};

export function fairseqRank(w: FairseqWorkload, ctx: RankContext): WorkloadRank {
  // The seed passes world_size in the overrides; it must be the run's, so --gpus 8 makes it 8.
  const overrides = 'world_size' in w.model_overrides ? { ...w.model_overrides, world_size: ctx.worldSize } : w.model_overrides;
  const args = [
    w.data,
    '--path', w.path,
    '--task', w.task,
    '--gen-subset', w.gen_subset,
    '--sample-break-mode', w.sample_break_mode,
    '--tokens-per-sample', String(w.tokens_per_sample),
    '--batch-size', String(w.batch_size),
    ...(w.fp16 ? ['--fp16'] : []),
    ...(w.is_moe ? ['--is-moe'] : []),
    ...(w.max_valid_steps !== undefined ? ['--max-valid-steps', String(w.max_valid_steps)] : []),
    ...(w.output_word_probs ? ['--output-word-probs'] : []),
    ...(Object.keys(overrides).length > 0 ? ['--model-overrides', pyRepr(overrides as PyValue)] : []),
    ...w.extra_args,
    ...distributedArgs(ctx, w.backend),
  ];
  const dir = w.fairseq_dir === undefined ? undefined : resolve(w.fairseq_dir);
  return {
    bootstrapArgs: ['--entry', 'fairseq_cli.eval_lm:cli_main', '--', ...args],
    device: `cuda:${ctx.localRank}`,
    cwd: dir,
    pythonPath: dir === undefined ? [] : [dir],
  };
}

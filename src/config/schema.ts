// The one schema of a run's configuration. Everything a run does is decided by a RunConfig
// validated here; defaults live here too, so `moe-run schema` documents them for editors.
import { z } from 'zod';

const profilerSchedule = z
  .object({
    wait: z.number().int().min(0).default(0).describe('steps skipped before warm-up'),
    warmup: z.number().int().min(0).default(1).describe('steps traced but discarded'),
    active: z.number().int().min(1).default(3).describe('steps recorded'),
    repeat: z.number().int().min(0).default(1).describe('cycles of wait+warmup+active (0 = until the end)'),
  })
  .strict();

const moduleHook = z
  .object({
    target: z.string().regex(/^[\w.]+:[\w.]+$/, 'expected "package.module:ClassName"')
      .describe('class whose forward is wrapped, as "package.module:ClassName"'),
    label: z.string().optional().describe('range name in the trace (default: the class name)'),
    moe_suffix: z.boolean().default(false)
      .describe('append " with MoE" / " without MoE" to the label by the instance\'s is_moe_layer'),
  })
  .strict();

export const profileSchema = z
  .object({
    enabled: z.boolean().default(true).describe('false runs the same path without the profiler (to measure dilation)'),
    activities: z.array(z.enum(['cpu', 'cuda'])).min(1).default(['cpu']).describe('profiler activities'),
    record_shapes: z.boolean().default(false),
    profile_memory: z.boolean().default(false),
    with_stack: z.boolean().default(false),
    schedule: profilerSchedule.nullable().default(null)
      .describe('torch.profiler.schedule driven by the step function; null records the whole region'),
    hooks: z.array(moduleHook).optional().describe('module classes to tag; default: the workload\'s'),
    region: z.string().regex(/^[\w.]+:[\w.]+$/).optional()
      .describe('function whose call is profiled, "module:function" or "module:Class.method"; default: the workload\'s'),
    step: z.string().regex(/^[\w.]+:[\w.]+$/).optional()
      .describe('call that ends one batch (drives the schedule and progress); default: the workload\'s'),
    row_limit: z.number().int().min(1).default(100).describe('rows in ops_cpu.txt / ops_cuda.txt'),
  })
  .strict();

const scalarOrList = z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.union([z.string(), z.number(), z.boolean()]))]);

const distributedFields = {
  backend: z.enum(['nccl', 'gloo']).default('nccl').describe('torch.distributed backend'),
  master_port: z.number().int().min(0).max(65535).default(0)
    .describe('torch.distributed TCP port on node 0 (0 = pick a free one)'),
};

export const fairseqWorkload = z
  .object({
    kind: z.literal('fairseq-eval-lm'),
    ...distributedFields,
    fairseq_dir: z.string().optional().describe('fairseq checkout (moe branch): used as cwd and put on PYTHONPATH'),
    data: z.string().describe('binarized data directory (positional argument of eval_lm)'),
    path: z.string().describe('checkpoint (--path)'),
    task: z.string().default('language_modeling'),
    gen_subset: z.string().default('valid'),
    sample_break_mode: z.string().default('none'),
    tokens_per_sample: z.number().int().positive().default(2048),
    batch_size: z.number().int().positive().default(1),
    fp16: z.boolean().default(true),
    is_moe: z.boolean().default(true),
    max_valid_steps: z.number().int().positive().optional(),
    output_word_probs: z.boolean().default(false),
    model_overrides: z.record(z.string(), scalarOrList).default({})
      .describe('rendered as the Python dict string of --model-overrides'),
    extra_args: z.array(z.string()).default([]).describe('more eval_lm arguments, passed as they are'),
  })
  .strict();

// CPU-capable workloads: the backend follows the device unless given (nccl needs CUDA).
const deviceFields = {
  device: z.enum(['cpu', 'cuda']).default('cpu').describe('cpu: every rank on the CPU; cuda: rank on local GPU cuda:<local rank>'),
  backend: z.enum(['nccl', 'gloo']).optional().describe('torch.distributed backend (default: gloo on cpu, nccl on cuda)'),
};

export const tinymoeWorkload = z
  .object({
    kind: z.literal('tinymoe'),
    ...distributedFields,
    ...deviceFields,
    tokens_per_sample: z.number().int().positive().default(128),
    batch_size: z.number().int().positive().default(2),
    max_valid_steps: z.number().int().positive().default(4),
    num_layers: z.number().int().positive().default(4),
    embed_dim: z.number().int().positive().default(64),
    ffn_dim: z.number().int().positive().default(128),
    heads: z.number().int().positive().default(4),
    vocab_size: z.number().int().positive().default(1000),
    num_experts: z.number().int().positive().default(4).describe('experts in all, sharded across ranks'),
    moe_freq: z.number().int().min(0).default(2).describe('an MoE layer every moe_freq layers (0 = dense)'),
    seed: z.number().int().default(1),
    model_overrides: z.record(z.string(), scalarOrList).default({})
      .describe('as fairseq: e.g. moe_eval_capacity_token_fraction'),
    fp16: z.boolean().default(false),
    extra_args: z.array(z.string()).default([]),
  })
  .strict();

export const commandWorkload = z
  .object({
    kind: z.literal('command'),
    ...distributedFields,
    ...deviceFields,
    argv: z.array(z.string()).min(1).describe('program and arguments, one per rank; never passed through a shell'),
    module: z.boolean().default(false).describe('argv[0] is a Python module run through the bootstrap (python -m)'),
  })
  .strict();

export const workloadSchema = z.discriminatedUnion('kind', [fairseqWorkload, tinymoeWorkload, commandWorkload]);

export const samplingSchema = z
  .object({
    enabled: z.boolean().default(true),
    interval_ms: z.number().int().min(10).default(100),
    nvidia_smi: z.boolean().default(true).describe('sample the GPUs with nvidia-smi when it is on PATH'),
    nvidia_smi_fields: z.array(z.string()).optional().describe('--query-gpu fields; default: the standard set'),
    process: z.boolean().default(true).describe('sample each rank\'s process tree (CPU %, RSS)'),
  })
  .strict();

export const rendezvousSchema = z
  .object({
    host: z.string().default('127.0.0.1').describe('address ranks use to reach node 0'),
    bind: z.string().optional().describe('interface to listen on (default: loopback on one node, host on several)'),
    port: z.number().int().min(0).max(65535).default(0).describe('0 = a free port'),
    timeout_s: z.number().positive().default(1800).describe('barrier timeout; loading a 15B checkpoint takes minutes'),
  })
  .strict();

export const outputSchema = z
  .object({
    dir: z.string().default('runs').describe('parent of run directories'),
    archive: z.boolean().default(false).describe('pack the run directory into <run>.tar.gz at the end'),
    shared: z.boolean().default(false).describe('output.dir is on a file system every node sees'),
  })
  .strict();

export const launchSchema = z
  .object({
    grace_s: z.number().min(0).default(10).describe('SIGTERM → SIGKILL grace period when stopping ranks'),
    tee: z.enum(['all', '0', 'none']).default('0').describe('which ranks\' output is echoed to the console'),
  })
  .strict();

export const runConfigSchema = z
  .object({
    name: z.string().regex(/^[\w.-]+$/, 'letters, digits, ".", "_" and "-" only').default('run'),
    gpus: z.number().int().positive().default(1).describe('ranks (GPUs) per node'),
    python: z.string().optional()
      .describe('interpreter that runs the ranks (needs torch); unset: $MOE_RUN_PYTHON, else the first python3 with torch'),
    workload: workloadSchema,
    profile: profileSchema.default(profileSchema.parse({})),
    sampling: samplingSchema.default(samplingSchema.parse({})),
    rendezvous: rendezvousSchema.default(rendezvousSchema.parse({})),
    // numbers and booleans are written as YAML writes them (OMP_NUM_THREADS: 1), the environment gets text
    env: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).default({})
      .describe('extra environment for every rank'),
    output: outputSchema.default(outputSchema.parse({})),
    launch: launchSchema.default(launchSchema.parse({})),
  })
  .strict()
  // Combinations that would only fail minutes later, inside torch.
  .superRefine((c, ctx) => {
    const w = c.workload;
    if (w.kind === 'fairseq-eval-lm') return;
    if (w.device === 'cpu' && w.backend === 'nccl') {
      ctx.addIssue({ code: 'custom', path: ['workload', 'backend'], message: 'nccl needs CUDA devices: use backend: gloo with device: cpu' });
    }
    if (w.device === 'cpu' && c.profile.activities.includes('cuda')) {
      ctx.addIssue({ code: 'custom', path: ['profile', 'activities'], message: 'the cuda activity needs device: cuda (this workload runs on the CPU)' });
    }
  });

export type RunConfig = z.infer<typeof runConfigSchema>;
export type WorkloadConfig = z.infer<typeof workloadSchema>;
export type ProfileConfig = z.infer<typeof profileSchema>;
export type ModuleHook = z.infer<typeof moduleHook>;

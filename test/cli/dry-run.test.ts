// `moe-run --dry-run` on the shipped configs: what a real run would start, checked rank by rank.
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunPlan } from '../../src/plan/types.js';
import { ensureBuilt, moeRun } from './cli.js';

beforeAll(() => ensureBuilt());

function planJson(args: string[]): RunPlan {
  const r = moeRun([...args, '--dry-run', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as RunPlan;
}

/** The value after `flag` in an argv. */
function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
}

describe('moe-run --gpus 4 --config configs/15b.yaml --dry-run', () => {
  const r = () => moeRun(['--gpus', '4', '--config', 'configs/15b.yaml', '--dry-run']);

  it('prints 4 copy-pasteable commands: ranks 0-3, devices 0-3, one init method, no spawn, the seed args', () => {
    const out = r();
    expect(out.code).toBe(0);
    // Each command is `cd DIR && env \ K=V \ … python …`. Paste each into bash as is, with `env`
    // shadowed by a function that prints the words it got instead of running them.
    const commands = out.stdout.split('\n\n').filter((block) => block.includes('moe_run_bootstrap.py'));
    expect(commands).toHaveLength(4);
    const argvs = commands.map((block) => {
      const words = execFileSync('bash', ['-c', `env() { printf '%s\\0' "$@"; }\n${block}`], { encoding: 'utf8' });
      return words.split('\0').slice(0, -1);
    });
    const inits = new Set<string>();
    argvs.forEach((words, i) => {
      expect(words).toContain(`RANK=${i}`);
      expect(flag(words, '--distributed-rank')).toBe(String(i));
      expect(flag(words, '--device-id')).toBe(String(i));
      expect(flag(words, '--distributed-world-size')).toBe('4');
      expect(words).toContain('--distributed-no-spawn');
      expect(flag(words, '--distributed-backend')).toBe('nccl');
      inits.add(flag(words, '--distributed-init-method')!);
      const args = words.slice(words.indexOf('--') + 1);
      expect(args.slice(0, 19)).toEqual([
        '/mnt/data-bin/wikitext-103', '--path', '/mnt/en_moe_lm_15b/model.pt', '--task', 'language_modeling',
        '--gen-subset', 'valid', '--sample-break-mode', 'none', '--tokens-per-sample', '2048', '--batch-size', '1',
        '--fp16', '--is-moe', '--max-valid-steps', '4', '--output-word-probs', '--model-overrides',
      ]);
      expect(args[19]).toBe("{'world_size': 4, 'moe_eval_capacity_token_fraction': 0.05}");
      expect(flag(words, '--entry')).toBe('fairseq_cli.eval_lm:cli_main');
    });
    expect(inits.size).toBe(1);
    expect([...inits][0]).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
  });

  it('--dry-run --json is the plan', () => {
    const plan = planJson(['--config', 'configs/15b.yaml']);
    expect(plan.worldSize).toBe(4);
    expect(plan.ranks.map((k) => k.device)).toEqual(['cuda:0', 'cuda:1', 'cuda:2', 'cuda:3']);
    expect(plan.masterPort).toBeGreaterThan(0);
    for (const k of plan.ranks) {
      expect(k.env.MASTER_PORT).toBe(String(plan.masterPort));
      expect(k.env.MOE_RUN_RDZV).toBeUndefined(); // no rendezvous in a dry run
      expect(k.stdoutPath).toMatch(new RegExp(`rank-${k.rank}/stdout\\.log$`));
    }
    const profile = JSON.parse(plan.ranks[0].env.MOE_RUN_PROFILE);
    expect(profile).toMatchObject({ activities: ['cpu', 'cuda'], record_shapes: true, profile_memory: true });
    expect(profile.region).toBe('fairseq_cli.eval_lm:eval_lm');
  });

  it('--set profile.record_shapes=false reaches every rank\'s profile', () => {
    const plan = planJson(['--config', 'configs/15b.yaml', '--set', 'profile.record_shapes=false']);
    for (const k of plan.ranks) {
      const profile = JSON.parse(k.env.MOE_RUN_PROFILE);
      expect(profile.record_shapes).toBe(false);
      expect(profile.profile_memory).toBe(true);
    }
  });

  it('--gpus 8 makes 8 ranks, world size 8 everywhere, the overrides\' world_size too', () => {
    const plan = planJson(['--config', 'configs/15b.yaml', '--gpus', '8']);
    expect(plan.worldSize).toBe(8);
    expect(plan.ranks.map((k) => k.rank)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const k of plan.ranks) {
      expect(flag(k.argv, '--distributed-world-size')).toBe('8');
      expect(flag(k.argv, '--device-id')).toBe(String(k.localRank));
      expect(k.env.WORLD_SIZE).toBe('8');
      expect(k.env.MOE_RUN_WORLD_SIZE).toBe('8');
      expect(flag(k.argv, '--model-overrides')).toBe("{'world_size': 8, 'moe_eval_capacity_token_fraction': 0.05}");
    }
  });

  it('--set with a nested new key reaches fairseq\'s --model-overrides', () => {
    const plan = planJson(['--config', 'configs/15b.yaml', '--set', 'workload.model_overrides.moe_eval_capacity_token_fraction=0.1']);
    expect(flag(plan.ranks[0].argv, '--model-overrides')).toBe("{'world_size': 4, 'moe_eval_capacity_token_fraction': 0.1}");
  });
});

describe('the other shipped configs', () => {
  it('tiny-cpu: 2 CPU ranks over gloo, tinymoe on PYTHONPATH', () => {
    const plan = planJson(['--config', 'configs/tiny-cpu.yaml']);
    expect(plan.ranks.map((k) => k.device)).toEqual(['cpu', 'cpu']);
    for (const k of plan.ranks) {
      expect(flag(k.argv, '--entry')).toBe('tinymoe.eval_lm:cli_main');
      expect(k.argv).toContain('--cpu');
      expect(flag(k.argv, '--distributed-backend')).toBe('gloo');
      expect(k.env.PYTHONPATH.split(':')[0]).toMatch(/\/workloads$/);
    }
  });

  it('dense-125m: no --is-moe, no overrides', () => {
    const plan = planJson(['--config', 'configs/dense-125m.yaml']);
    expect(plan.ranks[0].argv).not.toContain('--is-moe');
    expect(plan.ranks[0].argv).not.toContain('--model-overrides');
  });
});

describe('several nodes', () => {
  it('--nnodes 2 --node-rank 1 --rdzv: this node starts global ranks 2-3, torch.distributed on node 0', () => {
    const plan = planJson(['--config', 'configs/tiny-cpu.yaml', '--nnodes', '2', '--node-rank', '1', '--rdzv', 'node0:29400']);
    expect(plan.worldSize).toBe(4);
    expect(plan.ranks.map((k) => [k.rank, k.localRank])).toEqual([[2, 0], [3, 1]]);
    for (const k of plan.ranks) {
      expect(k.env.MASTER_ADDR).toBe('node0');
      expect(flag(k.argv, '--distributed-init-method')).toBe(`tcp://node0:${plan.masterPort}`);
      expect(flag(k.argv, '--device-id')).toBe(String(k.localRank));
    }
  });
});

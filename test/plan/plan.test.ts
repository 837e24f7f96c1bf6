// planRun: one RankPlan per local rank, from a validated config and the node's facts.
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { runConfigSchema, type RunConfig } from '../../src/config/schema.js';
import { formatDryRun, freePort, maskEnv, planRun, type NodeFacts } from '../../src/plan/index.js';
import { shellQuote } from '../../src/plan/show.js';
import { pyRepr } from '../../src/plan/pyrepr.js';

function config(raw: Record<string, unknown>): RunConfig {
  return runConfigSchema.parse(raw);
}

const facts: NodeFacts = {
  hostname: 'node1', nnodes: 2, nodeRank: 1, ranksPerNode: 2, masterAddr: '10.0.0.1', masterPort: 29500,
  rendezvous: { host: '10.0.0.1', port: 29400, token: 's3cret' }, runDir: '/tmp/runs/x', python: '/opt/py/bin/python',
};

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
}

describe('planRun', () => {
  const fairseq = config({
    gpus: 2,
    workload: { kind: 'fairseq-eval-lm', data: '/d', path: '/m.pt', fairseq_dir: '/src/fairseq', extra_args: ['--softmax-batch', '1024'] },
    env: { NCCL_DEBUG: 'INFO' },
  });

  it('global ranks follow the node rank; every rank gets the same init method and its own device', () => {
    const plan = planRun(fairseq, facts);
    expect(plan.worldSize).toBe(4);
    expect(plan.ranks.map((r) => [r.rank, r.localRank, r.device])).toEqual([[2, 0, 'cuda:0'], [3, 1, 'cuda:1']]);
    for (const r of plan.ranks) {
      expect(r.argv.slice(0, 5)).toEqual(['/opt/py/bin/python', expect.stringMatching(/\/patches\/moe_run_bootstrap\.py$/), '--entry', 'fairseq_cli.eval_lm:cli_main', '--']);
      expect(flag(r.argv, '--distributed-init-method')).toBe('tcp://10.0.0.1:29500');
      expect(flag(r.argv, '--distributed-rank')).toBe(String(r.rank));
      expect(flag(r.argv, '--device-id')).toBe(String(r.localRank));
      expect(r.argv.indexOf('--softmax-batch')).toBeLessThan(r.argv.indexOf('--distributed-init-method'));
      expect(r.cwd).toBe('/src/fairseq');
      expect(r.rankDir).toBe(`/tmp/runs/x/rank-${r.rank}`);
      expect(r.stderrPath).toBe(`/tmp/runs/x/rank-${r.rank}/stderr.log`);
    }
  });

  it('sets torchrun\'s variables, the bootstrap\'s, and the config\'s', () => {
    const env = planRun(fairseq, facts).ranks[1].env;
    expect(env).toMatchObject({
      RANK: '3', LOCAL_RANK: '1', WORLD_SIZE: '4', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500',
      MOE_RUN_RANK: '3', MOE_RUN_WORLD_SIZE: '4', MOE_RUN_RANK_DIR: '/tmp/runs/x/rank-3',
      MOE_RUN_RDZV: '10.0.0.1:29400', MOE_RUN_TOKEN: 's3cret', PYTHONUNBUFFERED: '1', NCCL_DEBUG: 'INFO',
    });
    expect(env.PYTHONPATH.split(':')[0]).toBe('/src/fairseq');
    expect(maskEnv(env).MOE_RUN_TOKEN).toBe('***');
  });

  it('fills the profile\'s hooks/region/step from the workload unless the config names its own', () => {
    const own = config({ ...fairseq, profile: { hooks: [{ target: 'my.mod:Block' }], region: 'my.mod:run' } });
    const p = JSON.parse(planRun(own, facts).ranks[0].env.MOE_RUN_PROFILE);
    expect(p.hooks).toEqual([{ target: 'my.mod:Block', moe_suffix: false }]);
    expect(p.region).toBe('my.mod:run');
    expect(p.step).toBe('fairseq.sequence_scorer:SequenceScorer.generate');
    const d = JSON.parse(planRun(fairseq, facts).ranks[0].env.MOE_RUN_PROFILE);
    expect(d.hooks.map((h: { target: string }) => h.target)).toEqual([
      'fairseq.models.transformer:TransformerDecoder',
      'fairseq.modules.transformer_layer:TransformerDecoderLayer',
      'fairseq.modules.multihead_attention:MultiheadAttention',
      'fairseq.modules.moe.moe_layer:MOELayer',
    ]);
    expect(d.hooks[1].moe_suffix).toBe(true);
  });

  it('no rendezvous (dry run): no MOE_RUN_RDZV/TOKEN', () => {
    const env = planRun(fairseq, { ...facts, rendezvous: undefined }).ranks[0].env;
    expect(env).not.toHaveProperty('MOE_RUN_RDZV');
    expect(env).not.toHaveProperty('MOE_RUN_TOKEN');
  });

  it('the config\'s python wins over the resolved one', () => {
    expect(planRun(config({ ...fairseq, python: '/x/python' }), facts).ranks[0].argv[0]).toBe('/x/python');
  });

  it('tinymoe on cuda: nccl, cuda:<local rank>, no --cpu', () => {
    const plan = planRun(config({ gpus: 2, workload: { kind: 'tinymoe', device: 'cuda' } }), facts);
    expect(plan.ranks[1].device).toBe('cuda:1');
    expect(flag(plan.ranks[1].argv, '--distributed-backend')).toBe('nccl');
    expect(plan.ranks[1].argv).not.toContain('--cpu');
  });

  it('command: a script or a module, its own arguments only', () => {
    const script = planRun(config({ workload: { kind: 'command', argv: ['train.py', '--x', '1'] } }), { ...facts, ranksPerNode: 1 });
    expect(script.ranks[0].argv.slice(2)).toEqual(['--', 'train.py', '--x', '1']);
    const mod = planRun(config({ workload: { kind: 'command', argv: ['pkg.main', '--x'], module: true } }), { ...facts, ranksPerNode: 1 });
    expect(mod.ranks[0].argv.slice(2)).toEqual(['-m', 'pkg.main', '--', '--x']);
    expect(JSON.parse(mod.ranks[0].env.MOE_RUN_PROFILE).hooks).toEqual([]);
  });
});

describe('model_overrides as the Python literal fairseq eval()s', () => {
  it('renders like repr()', () => {
    expect(pyRepr({ world_size: 4, moe_eval_capacity_token_fraction: 0.05 })).toBe("{'world_size': 4, 'moe_eval_capacity_token_fraction': 0.05}");
    expect(pyRepr({ a: true, b: false, c: null, d: [1, 'x'], e: 1e-5 })).toBe("{'a': True, 'b': False, 'c': None, 'd': [1, 'x'], 'e': 0.00001}");
    expect(pyRepr("it's")).toBe('"it\'s"');
    expect(pyRepr('a\'b"c\\\n')).toBe("'a\\'b\"c\\\\\\n'");
  });

  it('Python reads back what was meant', () => {
    const value = { s: "it's \"q\" \\ \n\t\u00e9", n: -3, f: 0.05, t: true, z: null, l: [1.5, 'x', false] };
    const back = execFileSync('/usr/bin/python3', ['-c', 'import json,sys; print(json.dumps(eval(sys.argv[1])))', pyRepr(value)], { encoding: 'utf8' });
    expect(JSON.parse(back)).toEqual(value);
  });
});

describe('dry-run text', () => {
  it('shell quoting survives bash', () => {
    const words = ['plain', '', 'two words', "it's", '$HOME', "{'a': 1}", 'a\'b"c$d', '!x'];
    const out = execFileSync('bash', ['-c', `printf '%s\\0' ${words.map(shellQuote).join(' ')}`], { encoding: 'utf8' });
    expect(out.split('\0').slice(0, -1)).toEqual(words);
  });

  it('masks the token', () => {
    const text = formatDryRun(planRun(config({ workload: { kind: 'tinymoe' } }), { ...facts, ranksPerNode: 1 }));
    expect(text).not.toContain('s3cret');
    expect(text).toContain("MOE_RUN_TOKEN='***'");
  });
});

describe('freePort', () => {
  it('returns a port that can be bound', async () => {
    const port = await freePort('127.0.0.1');
    expect(port).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(port, '127.0.0.1', ok); });
    await new Promise((ok) => server.close(ok));
  });
});

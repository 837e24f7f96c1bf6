// Config loading: file → --set → --gpus/--name → schema, and the one-line errors it gives.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { parseOverride } from '../../src/config/overrides.js';
import { editDistance, suggest } from '../../src/config/explain.js';
import { UserError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'moe-run-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const TINY = file('tiny.yaml', `name: t
gpus: 2
workload:
  kind: tinymoe
  batch_size: 2
  model_overrides:
    moe_eval_capacity_token_fraction: 0.25
`);

async function loadError(opts: Parameters<typeof loadConfig>[0]): Promise<string> {
  const err = await loadConfig(opts).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  expect((err as UserError).exitCode).toBe(2);
  const message = (err as UserError).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('--set values are YAML', () => {
  it.each([
    ['a.b=0.1', ['a', 'b'], 0.1],
    ['a=3', ['a'], 3],
    ['a=false', ['a'], false],
    ['a=[cpu, cuda]', ['a'], ['cpu', 'cuda']],
    ['a=[1,2]', ['a'], [1, 2]],
    ['a=cpu', ['a'], 'cpu'],
    ["a='3'", ['a'], '3'],
    ['a=x=y', ['a'], 'x=y'],
    ['env.FOO=', ['env', 'FOO'], ''],
  ])('%s', (text, path, value) => {
    expect(parseOverride(text)).toEqual({ text, path, value });
  });

  it.each(['novalue', '=3', 'a..b=1'])('%s is refused', (text) => {
    expect(() => parseOverride(text)).toThrow(UserError);
  });
});

describe('loadConfig', () => {
  it('applies defaults, then --set (creating nested keys), --gpus and --name', async () => {
    const { config, source } = await loadConfig({
      configPath: TINY,
      sets: ['workload.model_overrides.moe_eval_capacity_token_fraction=0.1', 'profile.schedule.active=2', 'env.FOO=bar'],
      gpus: 3,
      name: 'renamed',
    });
    expect(source).toBe(TINY);
    expect(config.gpus).toBe(3);
    expect(config.name).toBe('renamed');
    expect(config.env).toEqual({ FOO: 'bar' });
    expect(config.profile.schedule).toEqual({ wait: 0, warmup: 1, active: 2, repeat: 1 });
    if (config.workload.kind !== 'tinymoe') throw new Error('kind');
    expect(config.workload.model_overrides).toEqual({ moe_eval_capacity_token_fraction: 0.1 });
    expect(config.workload.batch_size).toBe(2);
    expect(config.workload.device).toBe('cpu');
    expect(config.python).toBeUndefined(); // resolved at plan time
  });

  it('an unknown key: file, line, path and a suggestion', async () => {
    const f = file('typo.yaml', 'workload:\n  kind: tinymoe\nprofile:\n  record_shape: true\n');
    expect(await loadError({ configPath: f })).toBe(`${f}:4: profile.record_shape: unknown key (did you mean "record_shapes"?)`);
  });

  it('an unknown key far from every allowed one lists them', async () => {
    const f = file('far.yaml', 'workload:\n  kind: tinymoe\noutput:\n  zzzzzzzz: 1\n');
    expect(await loadError({ configPath: f })).toContain('output.zzzzzzzz: unknown key (allowed: dir, archive, shared)');
  });

  it('a wrong type inside a list names the element', async () => {
    const f = file('list.yaml', 'workload:\n  kind: tinymoe\nprofile:\n  activities:\n    - cpu\n    - gpu\n');
    expect(await loadError({ configPath: f })).toBe(`${f}:6: profile.activities.1: expected "cpu" | "cuda", got "gpu" (string)`);
  });

  it('a missing required key names its parent\'s line', async () => {
    const f = file('missing.yaml', 'name: x\nworkload:\n  kind: fairseq-eval-lm\n  path: /m.pt\n');
    expect(await loadError({ configPath: f })).toBe(`${f}:2: workload.data: required key missing (expected string)`);
  });

  it('an unknown workload kind lists the kinds', async () => {
    const f = file('kind.yaml', 'workload:\n  kind: fairseq\n');
    expect(await loadError({ configPath: f })).toBe(`${f}:2: workload.kind: expected "fairseq-eval-lm" | "tinymoe" | "command", got "fairseq" (string)`);
  });

  it('a --set problem names the flag, not the file', async () => {
    expect(await loadError({ configPath: TINY, sets: ['workload.batch_sise=4'] }))
      .toBe('--set workload.batch_sise=4: workload.batch_sise: unknown key (did you mean "batch_size"?)');
    expect(await loadError({ configPath: TINY, gpus: 0 })).toMatch(/^--gpus 0: gpus: /);
    expect(await loadError({ configPath: TINY, sets: ['gpus.x=1'] })).toContain('not a mapping');
  });

  it('several problems: the first in the file, and how many more', async () => {
    const f = file('two.yaml', 'gpus: x\nworkload:\n  kind: tinymoe\n  seed: y\n');
    expect(await loadError({ configPath: f })).toMatch(new RegExp(`^${f}:1: gpus: .* \\(and 1 more problem\\)$`));
  });

  it('env values written as numbers or booleans become text; a list does not', async () => {
    const { config } = await loadConfig({ configPath: TINY, sets: ['env.OMP_NUM_THREADS=1', 'env.FLAG=true'] });
    expect(config.env).toEqual({ OMP_NUM_THREADS: '1', FLAG: 'true' });
    expect(await loadError({ configPath: TINY, sets: ['env.X=[1]'] }))
      .toBe('--set env.X=[1]: env.X: expected string | number | boolean, got a list [1]');
  });

  it('combinations torch would reject later', async () => {
    expect(await loadError({ configPath: TINY, sets: ['workload.backend=nccl'] })).toContain('nccl needs CUDA');
    expect(await loadError({ configPath: TINY, sets: ['profile.activities=[cpu, cuda]'] })).toContain('needs device: cuda');
  });

  it('missing file, directory, invalid YAML, not a mapping', async () => {
    expect(await loadError({ configPath: join(dir, 'absent.yaml') })).toContain('no such file');
    expect(await loadError({ configPath: dir })).toContain('is a directory');
    const bad = file('bad.yaml', 'workload:\n  kind: tinymoe\n  seed: [1\n');
    expect(await loadError({ configPath: bad })).toMatch(new RegExp(`^${bad}:\\d+:\\d+: invalid YAML: `));
    const dup = file('dup.yaml', 'gpus: 1\ngpus: 2\n');
    expect(await loadError({ configPath: dup })).toMatch(/:2:\d+: invalid YAML: .*unique/i);
    const list = file('list-top.yaml', '- a\n- b\n');
    expect(await loadError({ configPath: list })).toContain('expected a mapping');
  });
});

describe('did you mean', () => {
  it('edit distance', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
  });
  it('suggests the closest key, case-insensitively', () => {
    expect(suggest('Batch_Sise', ['batch_size', 'seed'])).toBe(' (did you mean "batch_size"?)');
    expect(suggest('qqqq', ['batch_size', 'seed'])).toBe(' (allowed: batch_size, seed)');
  });
});

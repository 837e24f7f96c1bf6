// `moe-run schema`: the JSON Schema editors use to check config files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { beforeAll, expect, it } from 'vitest';
import { ensureBuilt, moeRun, repoRoot } from './cli.js';

beforeAll(() => ensureBuilt());

type Schema = { properties?: Record<string, Schema>; oneOf?: Schema[]; anyOf?: Schema[]; required?: string[]; [k: string]: unknown };

it('prints a JSON Schema with every section, and the shipped configs use only keys it knows', () => {
  const r = moeRun(['schema']);
  expect(r.code).toBe(0);
  const schema = JSON.parse(r.stdout) as Schema;
  expect(schema.$schema).toMatch(/json-schema\.org/);
  expect(schema.type).toBe('object');
  expect(Object.keys(schema.properties!)).toEqual(
    expect.arrayContaining(['name', 'gpus', 'python', 'workload', 'profile', 'sampling', 'rendezvous', 'env', 'output', 'launch']));
  expect(schema.required).toEqual(['workload']); // io: 'input': everything with a default is optional
  const kinds = (schema.properties!.workload.oneOf ?? schema.properties!.workload.anyOf)!;
  const byKind = new Map(kinds.map((k) => [(k.properties!.kind as { const: string }).const, k]));
  expect([...byKind.keys()].sort()).toEqual(['command', 'fairseq-eval-lm', 'tinymoe']);

  for (const file of ['15b.yaml', 'tiny-cpu.yaml', 'dense-125m.yaml']) {
    const config = parse(readFileSync(join(repoRoot, 'configs', file), 'utf8')) as Record<string, Record<string, unknown>>;
    for (const [section, value] of Object.entries(config)) {
      const s = section === 'workload' ? byKind.get(String(value.kind))! : schema.properties![section];
      expect(s, `${file}: ${section}`).toBeDefined();
      if (value !== null && typeof value === 'object' && !Array.isArray(value) && s.properties) {
        for (const key of Object.keys(value)) expect(s.properties, `${file}: ${section}.${key}`).toHaveProperty(key);
      }
    }
  }
});

// The bootstrap reads the moe_run/start marker's ts back from the exported trace by streaming it.
// Kineto traces cannot be made here (torch 1.13 without Kineto, no GPU), so the scan is checked on the
// real Kineto traces in ../shared (HTA's test data) for user annotations they contain, against a full
// JSON parse; the legacy layout is covered by bootstrap.test.ts on traces the tiny workload writes.
import { execa } from 'execa';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PYTHON, repoRoot, type TraceEvent } from './helpers.js';

const SHARED = join(repoRoot, '..', 'shared', 'traces', 'hta');

async function scan(path: string, names: string[]): Promise<(string | null)[]> {
  const code = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'patches'))})`,
    'from moe_run.export import find_marker_ts',
    'print(json.dumps([find_marker_ts(sys.argv[1], n) for n in sys.argv[2:]]))',
  ].join('\n');
  const { stdout } = await execa(PYTHON, ['-c', code, path, ...names]);
  return JSON.parse(stdout) as (string | null)[];
}

describe('marker lookup in a trace file', () => {
  it.each([
    ['nccl_parser_config/nccl_data.json.gz'], // current Kineto: relative ts with ns decimals, GPU copies
    ['trace_filter/sampled_rank-0.json.gz'], // integer epoch µs, one event per line
  ])('finds the first CPU-side range of a name in %s, as a full parse does', async (file) => {
    const text = gunzipSync(readFileSync(join(SHARED, file)));
    const plain = join(mkdtempSync(join(tmpdir(), 'moe-run-marker-')), 'trace.json');
    writeFileSync(plain, text);
    const events = (JSON.parse(text.toString('utf8')) as { traceEvents: TraceEvent[] }).traceEvents;
    const cpu = events.filter((e) => e.cat === 'user_annotation');
    const names = [...new Set(cpu.map((e) => e.name))];
    expect(names.length).toBeGreaterThan(3);
    const found = await scan(plain, [...names, 'moe_run/start']);
    for (const [i, name] of names.entries()) {
      expect(Number(found[i]), name).toBe(cpu.find((e) => e.name === name)!.ts);
    }
    expect(found[names.length]).toBeNull(); // not in these traces
  });
});

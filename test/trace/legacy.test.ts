// Real traces that are not in shared/: torch 1.13 (Debian's, no Kineto) writes the legacy format — a
// bare array, pid "CPU functions", ts relative to the profiler's start. The test makes two with a small
// profiled program (autograd, MoE-like ranges, the moe_run/start marker) and merges them.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTraceEvents } from '../../src/trace/reader.js';
import { checkMerge } from './check-merge.js';
import { loadWhole } from './tef.js';

const PYTHON = '/usr/bin/python3';

const PROGRAM = `
import sys, torch
from torch.profiler import profile, record_function, ProfilerActivity
torch.manual_seed(int(sys.argv[2]))
w = torch.randn(32, 32, requires_grad=True)
def work(n):
    for _ in range(n):
        with record_function("MOELayer"):
            y = torch.relu(torch.randn(16, 32) @ w)
            y.sum().backward()
with profile(activities=[ProfilerActivity.CPU]) as prof:
    with record_function("moe_run/start"):
        pass
    work(3)
prof.export_chrome_trace(sys.argv[1])
`;

let dir: string;
let files: string[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-run-legacy-'));
  if (!existsSync(PYTHON)) return;
  await writeFile(join(dir, 'prog.py'), PROGRAM);
  const run = promisify(execFile);
  files = [join(dir, 'host_1.rank0.pt.trace.json'), join(dir, 'host_2.rank1.pt.trace.json')];
  await Promise.all(files.map((f, i) => run(PYTHON, [join(dir, 'prog.py'), f, String(i)], { cwd: dir })));
  // one of them gzip-compressed, as the bootstrap leaves them
  await writeFile(`${files[1]}.gz`, gzipSync(await readFile(files[1])));
  files[1] = `${files[1]}.gz`;
}, 120_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!existsSync(PYTHON))('torch 1.13 legacy traces', () => {
  it('are read as legacy: a bare array with relative integer ts', async () => {
    const { events, doc } = loadWhole(files[0]);
    expect(doc).toBeNull();
    expect(events.some((e) => e.pid === 'CPU functions')).toBe(true);
    let meta;
    let n = 0;
    for await (const e of readTraceEvents(files[0], (m) => (meta = m))) {
      expect(e.obj).toEqual(events[n++]);
    }
    expect(n).toBe(events.length);
    expect(meta).toMatchObject({ format: 'legacy', truncated: false });
  });

  it('merge as two ranks (rank from the file name), first events aligned, every event once', async () => {
    const { result, outEvents } = await checkMerge(dir, files, [0, 1]);
    expect(result.ranks.map((r) => [r.rank, r.rank_source, r.format, r.alignment?.method])).toEqual([
      [0, 'file name', 'legacy', 'first-event'],
      [1, 'file name', 'legacy', 'first-event'],
    ]);
    // the two ranks' "CPU functions" (same tid 1) kept apart, and the markers are there once per rank
    const names = outEvents.filter((e) => e.name === 'process_name').map((e) => e.args.name);
    expect(names.sort()).toEqual(['rank 0 · CPU', 'rank 1 · CPU']);
    expect(outEvents.filter((e) => e.name === 'moe_run/start')).toHaveLength(2);
    const threads = new Set(outEvents.filter((e) => e.ph === 'X').map((e) => `${e.pid}/${e.tid}`));
    expect(threads.size).toBe(2);
  });
});

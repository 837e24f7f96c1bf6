// `mergeTraceFiles` on every real trace in ../shared/traces/hta, alone and together, checked against
// plain whole-file parsing: each input event appears exactly once (per rank and phase), no pid or
// flow/correlation id is shared between ranks, the output passes a strict Trace Event Format check,
// and every timestamp equals the input's exact decimal plus the shift the test computes itself.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { mergeTraceFiles, rankFromFileName } from '../../src/trace/merge.js';
import { checkMerge } from './check-merge.js';
import { REAL } from './tef.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-run-merge-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('mergeTraceFiles on the real traces', () => {
  it('the sampled rank-0/rank-1 pair of one NCCL job, as a 2-rank timeline', async () => {
    const { result, doc, outEvents } = await checkMerge(dir, [REAL.rank0, REAL.rank1], [0, 1]);
    expect(result.ranks.map((r) => [r.rank, r.rank_source, r.alignment?.method])).toEqual([
      [0, 'distributedInfo', 'absolute'],
      [1, 'distributedInfo', 'absolute'],
    ]);
    expect(doc.metadata.ranks).toHaveLength(2);
    // processes are named and sorted by rank
    const names = outEvents.filter((e) => e.name === 'process_name').map((e) => e.args.name);
    expect(names).toContain('rank 0 · GPU 0');
    expect(names).toContain('rank 1 · GPU 1');
    expect(names).toContain('rank 0 · CPU (pid 4037)');
    const sortOf = new Map(outEvents.filter((e) => e.name === 'process_sort_index').map((e) => [e.pid, e.args.sort_index]));
    const nameOf = new Map(outEvents.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args.name as string]));
    const ordered = [...sortOf.entries()].sort((a, b) => a[1] - b[1]).map(([pid]) => Number(/^rank (\d+)/.exec(nameOf.get(pid)!)![1]));
    expect(ordered).toEqual([...ordered].sort((a, b) => a - b));
  });

  it.each([
    ['nccl_data (baseTimeNanoseconds, ns decimals, ac2g/fwdbwd flows)', REAL.nccl, 0],
    ['cpu_only (gloo rank 34)', REAL.cpuOnly, 34],
    ['ns_resolution (displayTimeUnit ns, float epoch µs)', REAL.nsResolution, 0],
    ['trace_file_list (old categories Runtime/Kernel)', REAL.oldCategories, 1],
    ['AMD MI250 (no distributedInfo: argument order)', REAL.amd, 0],
    ['triton (cuda_driver events)', REAL.triton, 0],
    ['rank_unavailable (distributedInfo without rank)', REAL.rankUnavailable, 0],
    ['distributed_info_unavailable', REAL.noDistributedInfo, 0],
  ])('%s', async (_name, file, rank) => {
    await checkMerge(dir, [file], [rank]);
  });

  it('different time bases together (baseTimeNanoseconds ones and epoch µs), ranks by every rule', async () => {
    const { result } = await checkMerge(dir, [REAL.nccl, REAL.cpuOnly, REAL.amd, REAL.rank0], [0, 34, 2, 1]);
    const src = Object.fromEntries(result.ranks.map((r) => [r.rank, r.rank_source]));
    expect(src[34]).toBe('distributedInfo');
    expect(src[2]).toBe('argument order');
    // sampled_rank-0 also says rank 0, which nccl_data has: renumbered, and said so
    expect(src[1]).toMatch(/renumbered/);
    expect(result.warnings.join('\n')).toMatch(/rank 0 \(distributedInfo\) is already taken; merged as rank 1/);
  });
});

describe('rank from a file name', () => {
  it.each([
    ['rank-3.trace.json.gz', 3],
    ['host_12.rank7.pt.trace.json.gz', 7],
    ['inference_rank_1.json.gz', 1],
    ['rank_not_found.json.gz', null],
    ['cranky2.json', null],
  ])('%s → %s', (name, rank) => {
    expect(rankFromFileName(`/x/${name}`)).toBe(rank);
  });
});

describe('mergeTraceFiles refuses what is not a trace', () => {
  it('in one line naming the file and the byte', async () => {
    const csv = join(dir, 'samples.csv');
    await writeFile(csv, 'recv_ns,rank\n1,0\n');
    const merge = mergeTraceFiles([REAL.cpuOnly, csv], join(dir, 'never.json.gz'));
    await expect(merge).rejects.toThrow(UserError);
    await expect(merge).rejects.toThrow(`merge: ${csv}: not a readable trace: invalid JSON at byte 0 (not a JSON trace: expected { or [)`);
  });
});

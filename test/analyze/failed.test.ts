// A failed run keeps what it got: the analysis covers the ranks that exported a trace, says which
// did not and why, and the failure leads the findings.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeRunDir } from '../../src/analyze/index.js';
import { HTA, makeRunDir } from './helpers.js';

describe('analysis of a failed run', () => {
  it('reports the rank that failed and analyzes the one that exported', async () => {
    const dir = await makeRunDir('broken', [
      { rank: 0, trace: join(HTA, 'trace_filter/sampled_rank-0.json.gz'), status: 'ok' },
      { rank: 1, status: 'failed', reason: 'exit code 1: CUDA out of memory' },
    ], { failure: { rank: 1, exit_code: 1, reason: 'rank 1 exited with code 1' } });
    const s = await analyzeRunDir(dir);
    expect(s.run.status).toBe('failed');
    expect(s.ranks.map((r) => [r.rank, r.status, r.trace_file !== null])).toEqual([[0, 'ok', true], [1, 'failed', false]]);
    expect(s.findings[0]).toBe('Rank 1 failed: exit code 1: CUDA out of memory.');
    expect(s.notes).toContain('rank 1: no trace (the rank failed)');
    expect(s.ranks[0].collectives[0].label).toBe('all-to-all (NCCL SendRecv)');
    expect(s.collectives).toEqual([]); // one rank: nothing to match across ranks
  });
});

// A failed run keeps what it got: the analysis covers the ranks that exported a trace, says which
// did not and why, and the failure leads the findings.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { analyzeRunDir } from '../../src/analyze/index.js';
import { HTA, makeRunDir, tempFolder } from './helpers.js';

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

  it('analyzes what a truncated trace holds (a rank killed while exporting) and says it was cut', async () => {
    const whole = gunzipSync(readFileSync(join(HTA, 'trace_filter/sampled_rank-0.json.gz')));
    const cut = join(await tempFolder('cut'), 'cut.json.gz');
    await writeFile(cut, gzipSync(whole.subarray(0, Math.floor(whole.length * 0.6))));
    const s = await analyzeRunDir(await makeRunDir('cut', [{ rank: 0, trace: cut }]));
    expect(s.notes.some((n) => n.startsWith('rank 0:') && n.includes('truncated'))).toBe(true);
    expect(s.ranks[0].events).toBeGreaterThan(100);
    expect(s.ranks[0].region_s).toBeGreaterThan(0);
  });
});

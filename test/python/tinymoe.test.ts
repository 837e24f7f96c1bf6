// workloads/tinymoe on its own (no moe-run): real gloo ranks, fairseq's summary lines, and MoE layers
// whose all-to-all really carries tokens between ranks.
import { describe, expect, it } from 'vitest';
import { EVALUATED, LOSS, MOE, line, runRanks } from './helpers.js';

describe('tinymoe', () => {
  it('two gloo ranks each print the summary lines, and the all-to-all moves tokens between them', async () => {
    // 2 ranks x 2 batches evaluate the same 4 batches as 1 rank x 4 (batch g goes to rank g mod n)
    const [two, one] = await Promise.all([
      runRanks(2, { args: ['--max-valid-steps', '2'] }),
      runRanks(1, { args: ['--max-valid-steps', '4'] }),
    ]);
    for (const r of [...two, ...one]) expect(r.exitCode, r.all).toBe(0);

    const losses = two.map((r) => Number(line(r.all, LOSS)[1]));
    for (const r of two) {
      const [, tokens, seconds, perSecond] = line(r.all, EVALUATED);
      // tokens are summed over ranks: 2 ranks x 2 batches x 2 sequences x 128 tokens
      expect(Number(tokens.replace(/,/g, ''))).toBe(2 * 2 * 2 * 128);
      expect(Number(seconds)).toBeGreaterThanOrEqual(0);
      expect(Number(perSecond)).toBeGreaterThan(0);
      const [, calls, remote, assignments] = line(r.all, MOE).map(Number);
      // default 4 layers with moe_freq 2: two MoE layers, two all-to-alls each, per batch
      expect(calls).toBe(2 * 2 * 2);
      expect(remote).toBeGreaterThan(0);
      expect(remote).toBeLessThan(assignments);
    }
    // every rank reports the loss summed over all ranks
    expect(losses[0]).toBe(losses[1]);
    // experts split over two ranks compute what one rank holding them all computes: the tokens
    // went to the right rank and came back to the right place
    const single = Number(line(one[0].all, LOSS)[1]);
    expect(Math.abs(losses[0] - single)).toBeLessThan(1e-3);
    expect(Number(line(one[0].all, MOE)[2])).toBe(0); // one rank: nothing leaves it
  });

  it('refuses an expert count the world size does not divide, naming both', async () => {
    const results = await runRanks(2, { args: ['--num-experts', '3', '--max-valid-steps', '1'] });
    for (const r of results) {
      expect(r.exitCode).not.toBe(0);
      expect(r.all).toContain('--num-experts 3 is not divisible by the world size 2');
    }
  });
});

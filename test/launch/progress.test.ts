import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Progress, describe as describeProgress } from '../../src/launch/progress.js';

function sink(columns?: number) {
  const chunks: string[] = [];
  const stream = new Writable({ write(chunk, _enc, done) { chunks.push(String(chunk)); done(); } }) as Writable & { columns?: number };
  stream.columns = columns;
  return { stream, text: () => chunks.join('') };
}

describe('Progress', () => {
  it('prints plain timestamped lines off a terminal, once per change', () => {
    const err = sink();
    const out = sink();
    let now = Date.parse('2026-11-29T05:20:01Z');
    const p = new Progress({ ranks: [0, 1], mode: 'lines', err: err.stream, out: out.stream, now: () => now });
    p.update(1, { state: 'waiting', detail: 'barrier start' });
    p.update(1, { state: 'waiting', detail: 'barrier start' }); // no change, no line
    p.update(0, { state: 'profiling', step: 1, steps: 10 });
    p.update(0, { state: 'profiling', step: 2, steps: 10 }); // too soon after the last step line
    now += 11_000;
    p.update(0, { state: 'profiling', step: 3, steps: 10 });
    p.note('moe-run: barrier start released');
    p.rankOutput('stdout', '[rank 0] hello');
    p.stop();
    expect(err.text().split('\n')).toEqual([
      '2026-11-29T05:20:01Z rank 1 waiting at barrier start',
      '2026-11-29T05:20:01Z rank 0 profiling step 1 of 10',
      '2026-11-29T05:20:12Z rank 0 profiling step 3 of 10',
      '2026-11-29T05:20:12Z moe-run: barrier start released',
      '',
    ]);
    expect(out.text()).toBe('[rank 0] hello\n');
  });

  it('redraws one line per rank in place on a terminal, printing output above the block', () => {
    const err = sink(40);
    const out = sink();
    const p = new Progress({ ranks: [0, 1], mode: 'live', err: err.stream, out: out.stream, refreshMs: 60_000 });
    p.update(0, { state: 'loading', detail: 'a very long detail that does not fit in forty columns' });
    p.update(1, { state: 'profiling', step: 2, steps: 4 });
    p.rankOutput('stdout', '[rank 0] hello');
    p.stop();
    const text = err.text();
    // each redraw after the first moves up over the 2 lines it drew and clears them
    expect(text).toContain('\x1b[2A\r\x1b[0J');
    const lastBlock = text.slice(text.lastIndexOf('\x1b[0J') + 4).split('\n').filter(Boolean);
    expect(lastBlock).toHaveLength(2);
    expect(lastBlock[1]).toMatch(/^rank 1 +profiling .* step 2 of 4$/);
    for (const line of lastBlock) expect(line.length).toBeLessThanOrEqual(39);
    expect(out.text()).toBe('[rank 0] hello\n');
  });

  it('prints nothing when quiet', () => {
    const err = sink();
    const out = sink();
    const p = new Progress({ ranks: [0], mode: 'quiet', err: err.stream, out: out.stream });
    p.update(0, { state: 'done' });
    p.note('x');
    p.rankOutput('stderr', 'y');
    p.stop();
    expect(err.text() + out.text()).toBe('');
  });

  it('chooses the mode from the stream and --quiet', () => {
    expect(Progress.modeFor({ isTTY: false }, false)).toBe('lines');
    expect(Progress.modeFor({ isTTY: true }, true)).toBe('quiet');
    expect(describeProgress({ state: 'profiling', step: 3 })).toBe('profiling step 3');
  });
});

// The demo run end to end: configs/tiny-cpu.yaml, 2 real tinymoe ranks on the CPU (gloo), through the
// real bootstrap and rendezvous. What a user checks first: exit 0, the manifest, the ranks' exports.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/run-dir.js';
import { ensureBuilt, repoRoot } from '../cli/cli.js';
import { startMoeRun } from '../launch/procs.js';

beforeAll(() => ensureBuilt(), 300_000);

describe('moe-run --config configs/tiny-cpu.yaml', () => {
  it('runs 2 ranks to the end and records the run', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'moe-run-tiny-')), 'run');
    const moe = startMoeRun(repoRoot, ['--config', 'configs/tiny-cpu.yaml', '--out', out]);
    const code = await moe.exit;
    expect(code, moe.stderr()).toBe(0);
    expect(moe.stdout()).toContain(`moe-run: ok: 2 rank(s) exited 0`);
    expect(moe.stdout()).toMatch(/\[rank 0\] .*tokens\/s/); // rank 0 teed by default
    expect(moe.stdout()).not.toMatch(/\[rank 1\]/);

    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
    expect(m).toMatchObject({ status: 'ok', exit_code: 0, world_size: 2, name: 'tiny-cpu', config_source: 'configs/tiny-cpu.yaml' });
    expect(m.ranks.map((r) => [r.rank, r.status, r.exit_code])).toEqual([[0, 'ok', 0], [1, 'ok', 0]]);
    expect(m.ranks.every((r) => r.env.MOE_RUN_TOKEN === '***')).toBe(true);
    expect(Object.keys(m.rendezvous!.releases).sort()).toEqual(['end', 'start']);
    expect(Object.keys(m.rendezvous!.clock_offsets).sort()).toEqual(['0', '1']);
    expect(m.versions.torch).toMatch(/^\d+\.\d+/);
    expect(m.versions.python).toMatch(/^3\./);
    // events in reference-clock order of kind: spawn before connect before the start release
    const first = (kind: string) => BigInt(m.events.find((e) => e.kind === kind)!.t_ns);
    expect(first('spawn') < first('connect') && first('connect') < first('barrier-release')).toBe(true);
    expect(BigInt(m.timings.ranks.end_ns!)).toBeGreaterThan(BigInt(m.timings.ranks.start_ns));

    expect(readFileSync(join(out, 'rank-0', 'stdout.log'), 'utf8')).toMatch(/tokens\/s/);
    for (const rank of [0, 1]) expect(existsSync(join(out, `rank-${rank}`, 'rank.json'))).toBe(true);
    expect(readFileSync(join(out, 'config.yaml'), 'utf8')).toMatch(/kind: tinymoe/);
    expect(readFileSync(join(out, 'launcher.log'), 'utf8')).toMatch(/barrier start released/);
  }, 120_000);
});

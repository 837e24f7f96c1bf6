// launchRun in-process, with real ranks (/usr/bin/python3 scripts through the bootstrap): the post-run
// stages' sequence and failures, and launcher errors that must still leave a manifest saying why.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runConfigSchema } from '../../src/config/schema.js';
import { UserError } from '../../src/errors.js';
import { launchRun, type LaunchOptions, type PostRunStage } from '../../src/launch/index.js';
import type { Manifest } from '../../src/run-dir.js';

function sink() {
  const chunks: string[] = [];
  return { stream: new Writable({ write(c, _e, done) { chunks.push(String(c)); done(); } }), text: () => chunks.join('') };
}

function setup(script: string, rendezvous: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'moe-run-launch-'));
  writeFileSync(join(dir, 'rank.py'), script);
  const config = runConfigSchema.parse({
    name: 'lr', gpus: 2, python: '/usr/bin/python3',
    workload: { kind: 'command', argv: [join(dir, 'rank.py')] },
    profile: { enabled: false }, sampling: { enabled: false }, rendezvous, launch: { grace_s: 5 },
  });
  const out = join(dir, 'run');
  const stdout = sink();
  const stderr = sink();
  return {
    out, stdout, stderr, config,
    launch: (postRun: PostRunStage[] = [], more: Partial<LaunchOptions> = {}) =>
      launchRun({ config, configSource: 'test', outDir: out, argv: ['moe-run'], postRun, quiet: true, stdout: stdout.stream, stderr: stderr.stream, ...more }),
    manifest: () => JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest,
  };
}

describe('launchRun', () => {
  it('runs the post-run stages in order after a good run; a failing stage is noted and makes the exit 1', async () => {
    const run = setup('print("ok")');
    const seen: string[] = [];
    const stage = (name: string, fail = false): PostRunStage => ({
      name,
      run: async (ctx) => {
        seen.push(`${name}:${ctx.ok}:${ctx.runDir.isRunDir()}`);
        if (fail) throw new Error('no traces to merge');
      },
    });
    const skipped: PostRunStage = { name: 'pack', when: (ctx) => ctx.archive, run: async () => { seen.push('pack'); } };
    expect(await run.launch([stage('merge'), stage('report', true), skipped])).toBe(1);
    expect(seen).toEqual(['merge:true:true', 'report:true:true']);
    const m = run.manifest();
    expect(m.status).toBe('ok'); // the ranks' run was fine…
    expect(m.exit_code).toBe(1); // …but moe-run's result was not
    expect(m.notes).toContain('report failed: no traces to merge');
    expect(m.timings.merge.end_ns).toBeDefined();
    expect(m.timings.report.end_ns).toBeDefined();
    expect(m.timings.pack).toBeUndefined();
    expect(run.stdout.text()).toMatch(/moe-run: ok: 2 rank\(s\) exited 0/); // the result, even --quiet
    expect(run.stderr.text()).toBe(''); // nothing else with --quiet
  }, 120_000);

  it('after a failed run runs only the stages that ask to, and exits with the rank\'s code', async () => {
    const run = setup('import os, sys\nsys.exit(4 if os.environ["RANK"] == "0" else 0)');
    const seen: string[] = [];
    const code = await run.launch([
      { name: 'merge', run: async () => { seen.push('merge'); } },
      { name: 'pack', alsoAfterFailure: true, run: async (ctx) => { seen.push(`pack:${ctx.ok}`); } },
    ]);
    expect(code).toBe(4);
    expect(seen).toEqual(['pack:false']);
    expect(run.manifest()).toMatchObject({ status: 'failed', exit_code: 4, failure: { rank: 0, exit_code: 4 } });
    expect(run.stderr.text()).toMatch(/run failed: rank 0 exited with code 4/);
  }, 120_000);

  it('fails at once when a rank exits 0 without entering the barrier the others wait at', async () => {
    // Only rank 0 runs the region; without this check rank 0 would wait for the barrier timeout (here 300 s).
    const run = setup('import os, work\nif os.environ["RANK"] == "0":\n    work.region()\n', { timeout_s: 300 });
    const dir = join(run.out, '..');
    writeFileSync(join(dir, 'work.py'), 'def region():\n    pass\n');
    const code = await run.launch([], {
      config: runConfigSchema.parse({
        ...JSON.parse(JSON.stringify(run.config)), profile: { enabled: false, region: 'work:region' }, env: { PYTHONPATH: dir },
      }),
    });
    expect(code).toBe(1);
    expect(run.manifest().failure?.reason).toBe('rank 1 exited 0 without entering barrier start, where rank [0] waits');
  }, 120_000);

  it('does not start the ranks when a stopping signal comes during the setup', async () => {
    const run = setup('print("never")');
    // The samplers start just before the ranks: the signal arrives there, as a Ctrl-C could.
    const code = await run.launch([], {
      startSamplers: async () => {
        process.emit('SIGTERM', 'SIGTERM');
        return { stop: async () => {} };
      },
    });
    expect(code).toBe(143);
    const m = run.manifest();
    expect(m).toMatchObject({ status: 'interrupted', exit_code: 143, failure: { reason: 'interrupted by SIGTERM before the ranks started' } });
    expect(m.ranks.map((r) => r.status)).toEqual(['not-started', 'not-started']);
    expect(m.events.some((e) => e.kind === 'spawn')).toBe(false);
  }, 120_000);

  it('a busy rendezvous port is a UserError naming it, and the manifest says the run failed', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const run = setup('print("never")', { port });
      const err = await run.launch().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      expect(String((err as Error).message)).toBe(`rendezvous port ${port} on 127.0.0.1 is busy: set rendezvous.port to another port, or 0 for a free one`);
      const m = run.manifest();
      expect(m.status).toBe('failed');
      expect(m.failure?.reason).toMatch(/is busy/);
      expect(existsSync(join(run.out, 'rank-0'))).toBe(false);
      // the same directory is not run into twice
      await expect(run.launch()).rejects.toThrow(/already holds a run/);
    } finally {
      busy.close();
    }
  }, 120_000);
});

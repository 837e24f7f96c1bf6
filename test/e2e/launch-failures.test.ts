// moe-run end to end through its executable, with ranks that fail in each way the launcher must handle:
// small Python scripts run as `workload.kind: command` through the real bootstrap (/usr/bin/python3,
// which has torch) and the real rendezvous. After each run the process table must hold none of them.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/run-dir.js';
import { ensureBuilt, repoRoot } from '../cli/cli.js';
import { processesWithEnv, startMoeRun, waitUntil } from '../launch/procs.js';

beforeAll(() => ensureBuilt(), 300_000);

/**
 * A run of `script` on `gpus` ranks (the script reads its rank from RANK). Every rank carries a marker
 * in its environment, so that leftovers can be found in /proc whatever their pid.
 */
function setup(script: string, extra: { gpus?: number; timeoutS?: number; region?: string; files?: Record<string, string> } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'moe-run-e2e-'));
  const mark = randomBytes(6).toString('hex');
  writeFileSync(join(dir, 'rank.py'), script);
  for (const [name, text] of Object.entries(extra.files ?? {})) writeFileSync(join(dir, name), text);
  const config = [
    'name: e2e',
    `gpus: ${extra.gpus ?? 2}`,
    'python: /usr/bin/python3',
    'workload:',
    '  kind: command',
    `  argv: [${JSON.stringify(join(dir, 'rank.py'))}]`,
    'profile:',
    '  enabled: false',
    ...(extra.region ? [`  region: ${extra.region}`] : []),
    'rendezvous:',
    `  timeout_s: ${extra.timeoutS ?? 120}`,
    'launch:',
    '  grace_s: 3',
    'env:',
    `  MOE_RUN_TEST_MARK: "${mark}"`,
    `  PYTHONPATH: ${JSON.stringify(dir)}`,
  ].join('\n');
  writeFileSync(join(dir, 'run.yaml'), config + '\n');
  const out = join(dir, 'run');
  return {
    out,
    marker: `MOE_RUN_TEST_MARK=${mark}`,
    start: (...flags: string[]) => startMoeRun(repoRoot, ['--config', join(dir, 'run.yaml'), '--out', out, ...flags]),
    manifest: () => JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest,
  };
}

describe('moe-run launch, end to end', () => {
  it('a rank that exits 3 inside the region stops the others; moe-run exits 3 and names it', async () => {
    const run = setup([
      'import os, sys, time',
      'if os.environ["RANK"] == "1":',
      '    time.sleep(0.5)',
      '    print("rank 1: expert shard missing", file=sys.stderr, flush=True)',
      '    sys.exit(3)',
      'time.sleep(60)',
    ].join('\n'));
    const moe = run.start();
    expect(await moe.exit).toBe(3);
    expect(moe.stderr()).toMatch(/run failed: rank 1 exited with code 3/);
    expect(moe.stderr()).toMatch(/\| rank 1: expert shard missing/);
    const m = run.manifest();
    expect(m.status).toBe('failed');
    expect(m.exit_code).toBe(3);
    expect(m.failure).toMatchObject({ rank: 1, exit_code: 3, reason: 'rank 1 exited with code 3' });
    expect(m.ranks.map((r) => r.status)).toEqual(['stopped', 'failed']);
    // both reached the start barrier (the whole script is the region): the crash came inside it
    expect(Object.keys(m.rendezvous!.releases)).toEqual(['start']);
    expect(m.events.map((e) => e.kind)).toEqual(expect.arrayContaining(['spawn', 'connect', 'barrier-release', 'exit', 'failure']));
    expect(readFileSync(join(run.out, 'rank-1', 'stderr.log'), 'utf8')).toMatch(/expert shard missing/);
    expect(processesWithEnv(run.marker)).toEqual([]);
  }, 120_000);

  it('names a rank that never reaches the start barrier at the timeout and stops all', async () => {
    const run = setup([
      'import os, time, work',
      'if os.environ["RANK"] == "1":',
      '    time.sleep(60)  # stuck loading: never enters the region',
      'work.region()',
    ].join('\n'), { region: 'work:region', timeoutS: 2, files: { 'work.py': 'def region():\n    pass\n' } });
    const moe = run.start();
    expect(await moe.exit).toBe(1);
    expect(moe.stderr()).toMatch(/rank \[1\] never reached barrier start within 2 s/);
    const m = run.manifest();
    expect(m.failure?.reason).toBe('rank [1] never reached barrier start within 2 s');
    expect(m.events.some((e) => e.kind === 'barrier-timeout')).toBe(true);
    expect(m.rendezvous!.releases).toEqual({});
    expect(processesWithEnv(run.marker)).toEqual([]);
  }, 120_000);

  it('says so when a rank dies before it reaches the rendezvous', async () => {
    // The interpreter itself fails: no rank ever says hello.
    const run = setup('print("never runs")');
    const yaml = readFileSync(join(run.out, '..', 'run.yaml'), 'utf8').replace('python: /usr/bin/python3', 'python: /bin/false');
    writeFileSync(join(run.out, '..', 'run.yaml'), yaml);
    const moe = run.start('--quiet');
    expect(await moe.exit).toBe(1);
    expect(moe.stderr()).toMatch(/rank [01] exited before connecting to the rendezvous \(exited with code 1\)/);
    expect(run.manifest().failure?.reason).toMatch(/^rank [01] exited before connecting to the rendezvous/);
  }, 120_000);

  it('SIGINT to moe-run stops every rank, exits 130, and leaves no process behind', async () => {
    // Each rank also starts a child of its own, which must go too.
    const run = setup([
      'import subprocess, time',
      'subprocess.Popen(["sleep", "60"])',
      'print("ready", flush=True)',
      'time.sleep(60)',
    ].join('\n'));
    const moe = run.start('--tee', 'all');
    expect(await waitUntil(() => (moe.stdout().match(/ready/g) ?? []).length === 2, 60_000)).toBe(true);
    expect(processesWithEnv(run.marker).length).toBeGreaterThanOrEqual(4);
    moe.signal('SIGINT');
    expect(await moe.exit).toBe(130);
    expect(processesWithEnv(run.marker)).toEqual([]);
    const m = run.manifest();
    expect(m.status).toBe('interrupted');
    expect(m.failure?.reason).toBe('interrupted by SIGINT');
    for (const r of m.ranks) expect(r.pid).toBeGreaterThan(0);
  }, 120_000);

  it('ranks do not outlive a moe-run killed outright (SIGKILL): they see the rendezvous go and exit', async () => {
    const run = setup('import time\nprint("ready", flush=True)\ntime.sleep(60)');
    const moe = run.start('--tee', 'all');
    expect(await waitUntil(() => (moe.stdout().match(/ready/g) ?? []).length === 2, 60_000)).toBe(true);
    moe.signal('SIGKILL');
    await moe.exit;
    expect(await waitUntil(() => processesWithEnv(run.marker).length === 0, 15_000)).toBe(true);
  }, 120_000);

  it('a stray client with a wrong token and garbage bytes does not disturb a run', async () => {
    const run = setup([
      'import os, time',
      'deadline = time.time() + 30',
      // wait (inside the region) until the test has poked the rendezvous
      'while not os.path.exists(os.environ["POKED"]) and time.time() < deadline:',
      '    time.sleep(0.05)',
    ].join('\n'));
    const poked = join(run.out, '..', 'poked');
    const yaml = readFileSync(join(run.out, '..', 'run.yaml'), 'utf8') + `  POKED: ${JSON.stringify(poked)}\n`;
    writeFileSync(join(run.out, '..', 'run.yaml'), yaml);
    const moe = run.start();
    expect(await waitUntil(() => existsSync(join(run.out, 'manifest.json')) && run.manifest().rendezvous?.releases.start !== undefined, 60_000)).toBe(true);
    const port = run.manifest().rendezvous!.port;
    const send = (bytes: Buffer | string) => new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write(bytes));
      let got = '';
      s.on('data', (d) => { got += d; });
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    expect(await send('{"type":"hello","token":"guess","role":"rank","rank":0,"pid":1,"host":"x"}\n')).toMatch(/wrong join token/);
    expect(await send(Buffer.concat([randomBytes(2048), Buffer.from('\n')]))).toMatch(/"type":"error"/);
    writeFileSync(poked, '');
    expect(await moe.exit).toBe(0);
    const m = run.manifest();
    expect(m.status).toBe('ok');
    expect(m.ranks.map((r) => r.exit_code)).toEqual([0, 0]);
    expect(readFileSync(join(run.out, 'launcher.log'), 'utf8')).toMatch(/wrong join token/);
  }, 120_000);
});

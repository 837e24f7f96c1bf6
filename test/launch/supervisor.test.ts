// The gang supervisor with real processes (/usr/bin/python3 -c, no shell): logs, tee, the first failure
// stopping the others, the grace period, signals, and the process table afterwards.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ReferenceClock } from '../../src/launch/clock.js';
import { Supervisor, type SupervisorOptions } from '../../src/launch/supervisor.js';
import type { RankPlan } from '../../src/plan/types.js';
import { alive, processesWithEnv, waitUntil } from './procs.js';

const PY = '/usr/bin/python3';

function gang(scripts: string[], opts: Partial<SupervisorOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'moe-run-sup-'));
  const marker = `MOE_RUN_TEST_MARK=${randomBytes(6).toString('hex')}`;
  const ranks: RankPlan[] = scripts.map((code, rank) => ({
    rank, localRank: rank, nodeRank: 0, worldSize: scripts.length, device: 'cpu',
    argv: [PY, '-c', code, String(rank)],
    env: { [marker.split('=')[0]]: marker.split('=')[1], PYTHONUNBUFFERED: '1' },
    cwd: dir, rankDir: dir,
    stdoutPath: join(dir, `stdout-${rank}.log`), stderrPath: join(dir, `stderr-${rank}.log`),
  }));
  const console: string[] = [];
  const log: string[] = [];
  const sup = new Supervisor({
    ranks, graceS: 5, tee: 'all', clock: new ReferenceClock(),
    out: (stream, line) => console.push(`${stream} ${line}`), log: (l) => log.push(l), ...opts,
  });
  return { sup, dir, marker, console, log, ranks };
}

const SLEEP = 'import time; time.sleep(60)';

describe('Supervisor', () => {
  it('writes each rank\'s output to its logs and tees it prefixed; no failure when all exit 0', async () => {
    const { sup, ranks, console } = gang([
      'import sys; print("out of", sys.argv[1]); print("err of", sys.argv[1], file=sys.stderr)',
      'import sys; print("out of", sys.argv[1])',
    ]);
    const exits = await sup.run();
    expect(exits.map((e) => [e.rank, e.exitCode, e.stopped])).toEqual([[0, 0, false], [1, 0, false]]);
    expect(sup.failure).toBeUndefined();
    expect(readFileSync(ranks[0].stdoutPath, 'utf8')).toBe('out of 0\n');
    expect(readFileSync(ranks[0].stderrPath, 'utf8')).toBe('err of 0\n');
    expect(console.sort()).toEqual(['stderr [rank 0] err of 0', 'stdout [rank 0] out of 0', 'stdout [rank 1] out of 1']);
  });

  it('tees only rank 0 with tee "0"', async () => {
    const { sup, console } = gang(['print("zero")', 'print("one")'], { tee: '0' });
    await sup.run();
    expect(console).toEqual(['stdout [rank 0] zero']);
  });

  it('stops the others when one rank exits non-zero, and keeps that rank as the root cause', async () => {
    const { sup, marker } = gang([
      SLEEP,
      'import sys, time; time.sleep(0.3); print("boom: bad expert shard", file=sys.stderr); sys.exit(3)',
      SLEEP,
    ], { connected: () => true });
    const exits = await sup.run();
    expect(sup.failure).toMatchObject({ kind: 'rank', rank: 1, exitCode: 3, rankExitCode: 3, reason: 'rank 1 exited with code 3' });
    expect(sup.failure?.stderrTail).toEqual(['boom: bad expert shard']);
    expect(exits[1].stopped).toBe(false);
    for (const r of [0, 2]) expect(exits[r]).toMatchObject({ stopped: true, signal: 'SIGTERM' });
    expect(processesWithEnv(marker)).toEqual([]);
  });

  it('says a rank died before connecting when it never reached the rendezvous', async () => {
    const { sup } = gang(['import sys; sys.exit(7)'], { connected: () => false });
    await sup.run();
    expect(sup.failure?.reason).toBe('rank 0 exited before connecting to the rendezvous (exited with code 7)');
    expect(sup.failure?.exitCode).toBe(7);
  });

  it('exits 128+N for a rank killed by signal N, and 127 for a program that cannot start', async () => {
    const killed = gang(['import os, signal; os.kill(os.getpid(), signal.SIGSEGV)']);
    await killed.sup.run();
    expect(killed.sup.failure).toMatchObject({ exitCode: 139, signal: 'SIGSEGV', reason: 'rank 0 was killed by SIGSEGV' });
    const missing = gang(['']);
    missing.ranks[0].argv = ['/nonexistent/python3'];
    await missing.sup.run();
    expect(missing.sup.failure?.exitCode).toBe(127);
    expect(missing.sup.failure?.reason).toMatch(/rank 0 could not be started: .*ENOENT/);
  });

  it('kills a rank that ignores SIGTERM after the grace period, with the children of its group', async () => {
    const stubborn = 'import signal, subprocess, sys, time\n' +
      'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n' +
      'child = subprocess.Popen(["sleep", "60"])\n' +
      'print(child.pid, flush=True)\n' +
      'time.sleep(60)';
    const { sup, ranks, marker } = gang([stubborn, 'import time, sys; time.sleep(0.5); sys.exit(1)'], { graceS: 0.5 });
    const exits = await sup.run();
    expect(exits[0]).toMatchObject({ stopped: true, signal: 'SIGKILL' });
    const child = Number(readFileSync(ranks[0].stdoutPath, 'utf8').trim());
    expect(child).toBeGreaterThan(0);
    expect(await waitUntil(() => !alive(child), 2000)).toBe(true);
    expect(processesWithEnv(marker)).toEqual([]);
  });

  it('forwards SIGINT, exits 130, and a second SIGINT kills at once', async () => {
    const ignoresInt = 'import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint("ready", flush=True)\ntime.sleep(60)';
    const { sup, console, marker } = gang([ignoresInt, ignoresInt], { graceS: 60 });
    const done = sup.run();
    await waitUntil(() => console.length === 2);
    sup.signal('SIGINT');
    await new Promise((r) => setTimeout(r, 200));
    expect(processesWithEnv(marker)).toHaveLength(2); // they ignore SIGINT; the grace period is long
    sup.signal('SIGINT');
    const exits = await done;
    expect(exits.map((e) => e.signal)).toEqual(['SIGKILL', 'SIGKILL']);
    expect(sup.failure).toMatchObject({ kind: 'signal', exitCode: 130, reason: 'interrupted by SIGINT' });
    expect(processesWithEnv(marker)).toEqual([]);
  });

  it('fails a rank that said it failed but is still running after the grace period', async () => {
    const { sup, console, marker } = gang(['print("ready", flush=True)\nimport time; time.sleep(60)', 'import time; time.sleep(0.5)'], { graceS: 0.3 });
    const done = sup.run();
    await waitUntil(() => console.length === 1);
    sup.expectExit(0, 'reported a failure (RuntimeError: NCCL error)');
    sup.expectExit(1, 'reported a failure (it exits in time)');
    const exits = await done;
    expect(sup.failure).toMatchObject({ rank: 0, exitCode: 1, reason: 'rank 0 reported a failure (RuntimeError: NCCL error) but was still running 0.9 s later' });
    expect(exits[0].stopped).toBe(true);
    expect(processesWithEnv(marker)).toEqual([]);
  });

  it('passes SIGUSR1 on without stopping the run', async () => {
    const handler = 'import signal, sys, time\n' +
      'signal.signal(signal.SIGUSR1, lambda *a: (print("got usr1", flush=True), sys.exit(0)))\n' +
      'print("ready", flush=True)\ntime.sleep(60)';
    const { sup, console } = gang([handler]);
    const done = sup.run();
    await waitUntil(() => console.length === 1);
    sup.signal('SIGUSR1');
    const exits = await done;
    expect(exits[0].exitCode).toBe(0);
    expect(sup.failure).toBeUndefined();
    expect(console).toContain('stdout [rank 0] got usr1');
  });
});

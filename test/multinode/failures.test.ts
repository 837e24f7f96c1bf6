// Failures across nodes, end to end: two moe-run launchers on loopback (node 0 and an agent), each with
// 2 ranks that are small Python scripts run as `workload.kind: command` through the real bootstrap and
// the real rendezvous. Each failure test is a line of the fault matrix in docs/multinode.md; after each,
// the process table holds nothing of the run. Also here, as cheap to run: output.shared (in place).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/plan/ports.js';
import type { Manifest } from '../../src/run-dir.js';
import { ensureBuilt, repoRoot } from '../cli/cli.js';
import { processesWithEnv, startMoeRun, waitUntil } from '../launch/procs.js';

beforeAll(() => ensureBuilt(), 300_000);

const launcher = (args: string[], token: string) => startMoeRun(repoRoot, args, { MOE_RUN_JOIN_TOKEN: token });

/** A 2-node run of `script` (it reads its global rank from RANK); the whole script is the region. */
async function setup(script: string, timeoutS = 120) {
  const dir = mkdtempSync(join(tmpdir(), 'moe-multinode-'));
  const mark = randomBytes(6).toString('hex');
  writeFileSync(join(dir, 'rank.py'), script);
  writeFileSync(join(dir, 'run.yaml'), [
    'name: multinode', 'gpus: 2', 'python: /usr/bin/python3',
    'workload:', '  kind: command', `  argv: [${JSON.stringify(join(dir, 'rank.py'))}]`,
    'profile:', '  enabled: false',
    'rendezvous:', `  timeout_s: ${timeoutS}`,
    'launch:', '  grace_s: 3',
    'env:', `  MOE_RUN_TEST_MARK: "${mark}"`, `  MOE_RUN_TEST_DIR: ${JSON.stringify(dir)}`,
  ].join('\n') + '\n');
  const out = join(dir, 'run');
  const port = await freePort('127.0.0.1');
  const token = randomBytes(16).toString('hex');
  const start = (node: number, tokenOverride?: string, ...flags: string[]) => launcher([
    '--config', join(dir, 'run.yaml'), '--out', out, '--nnodes', '2', '--node-rank', String(node),
    '--rdzv', `127.0.0.1:${port}`, '--tee', 'all', ...flags,
  ], tokenOverride ?? token);
  return {
    dir, out, start,
    marker: `MOE_RUN_TEST_MARK=${mark}`,
    manifest: () => JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest,
  };
}

const statuses = (m: Manifest) => m.ranks.map((r) => r.status);

describe('failures across two nodes', () => {
  it('a rank failing on node 1 stops the ranks on both nodes; node 0 names rank and node', async () => {
    const run = await setup([
      'import os, sys, time',
      'if os.environ["RANK"] == "3":',
      '    time.sleep(1)',
      '    print("rank 3: out of memory", file=sys.stderr, flush=True)',
      '    sys.exit(3)',
      'time.sleep(120)',
    ].join('\n'));
    const node0 = run.start(0);
    const node1 = run.start(1);
    const [code0, code1] = await Promise.all([node0.exit, node1.exit]);
    expect(code0, node0.output()).toBe(3);
    expect(code1, node1.output()).not.toBe(0);
    const m = run.manifest();
    expect(m.status).toBe('failed');
    expect(m.failure).toMatchObject({ rank: 3, node: 1, exit_code: 3 });
    expect(m.failure!.reason).toMatch(/^rank 3 on node 1 .*exited with code 3/);
    expect(m.failure!.stderr_tail).toContain('rank 3: out of memory');
    expect(statuses(m)).toEqual(['stopped', 'stopped', 'stopped', 'failed']);
    // node 1's folders still reached node 0
    expect(readFileSync(join(run.out, 'rank-3', 'stderr.log'), 'utf8')).toMatch(/out of memory/);
    expect(processesWithEnv(run.marker)).toEqual([]);
  }, 120_000);

  it('a node that never joins is named at the timeout; an agent with a wrong token is refused at once', async () => {
    const run = await setup('import time\ntime.sleep(120)\n', 4);
    const node0 = run.start(0);
    const stranger = run.start(1, 'not-the-token-of-this-run');
    expect(await stranger.exit).toBe(2);
    expect(stranger.output()).toMatch(/refused node 1: .*wrong join token/);
    expect(await node0.exit).toBe(1);
    const m = run.manifest();
    expect(m.failure).toMatchObject({ node: 1 });
    expect(m.failure!.reason).toMatch(/^node 1 \(ranks 2-3\) never joined the rendezvous within 4 s/);
    expect(m.ranks.map((r) => [r.rank, r.status])).toEqual([[0, 'stopped'], [1, 'stopped'], [2, 'not-started'], [3, 'not-started']]);
    expect(processesWithEnv(run.marker)).toEqual([]);
  }, 120_000);

  it('node 0 dying stops the ranks of every node; the agent keeps its folder and says why', async () => {
    const run = await setup('import time\nprint("ready", flush=True)\ntime.sleep(120)\n');
    const node0 = run.start(0);
    const node1 = run.start(1);
    const ready = () => (node0.output().match(/ready/g) ?? []).length === 2 && (node1.output().match(/ready/g) ?? []).length === 2;
    expect(await waitUntil(ready, 60_000), node0.output() + node1.output()).toBe(true);
    node0.signal('SIGKILL');
    expect(await node1.exit).not.toBe(0);
    expect(node1.output()).toMatch(/lost the connection to node 0/);
    // node 0's own ranks lost their rendezvous with it, and exit on their own
    expect(await waitUntil(() => processesWithEnv(run.marker).length === 0, 30_000), `left: ${processesWithEnv(run.marker)}`).toBe(true);
    expect(existsSync(join(`${run.out}-node1`, 'rank-2', 'stdout.log'))).toBe(true);
  }, 120_000);

  it('a busy rendezvous port is one line naming the port and what to do', async () => {
    const run = await setup('print("never")\n');
    const port = await freePort('127.0.0.1');
    const squatter = createServer().listen(port, '127.0.0.1');
    try {
      const node0 = launcher(['--config', join(run.dir, 'run.yaml'), '--out', run.out, '--nnodes', '2', '--node-rank', '0',
        '--rdzv', `127.0.0.1:${port}`], 'a-token-for-this-test');
      expect(await node0.exit).toBe(2);
      expect(node0.output()).toMatch(new RegExp(`^moe-run: rendezvous port ${port} on 127\\.0\\.0\\.1 is busy: give every node --rdzv 127\\.0\\.0\\.1:PORT with a free PORT$`, 'm'));
    } finally {
      squatter.close();
    }
  }, 60_000);

  it('SIGUSR1 reaches every rank on every node; SIGTERM (preemption) then stops them all', async () => {
    const run = await setup([
      'import os, signal, time',
      'def usr1(*_):',
      '    open(os.path.join(os.environ["MOE_RUN_TEST_DIR"], "usr1-" + os.environ["RANK"]), "w").close()',
      'signal.signal(signal.SIGUSR1, usr1)',
      'print("ready", flush=True)',
      'time.sleep(120)',
    ].join('\n'));
    const node0 = run.start(0);
    const node1 = run.start(1);
    const ready = () => (node0.output().match(/ready/g) ?? []).length === 2 && (node1.output().match(/ready/g) ?? []).length === 2;
    expect(await waitUntil(ready, 60_000), node0.output() + node1.output()).toBe(true);
    // Slurm signals every task of the step, that is every node's launcher
    node0.signal('SIGUSR1');
    node1.signal('SIGUSR1');
    const flagged = () => [0, 1, 2, 3].every((r) => existsSync(join(run.dir, `usr1-${r}`)));
    expect(await waitUntil(flagged, 20_000)).toBe(true);
    node0.signal('SIGTERM');
    node1.signal('SIGTERM');
    const [code0, code1] = await Promise.all([node0.exit, node1.exit]);
    expect(code0).toBe(143);
    expect(code1).not.toBe(0);
    const m = run.manifest();
    expect(m.status).toBe('interrupted');
    expect(m.failure!.reason).toBe('interrupted by SIGTERM');
    expect(statuses(m).every((s) => s === 'stopped')).toBe(true);
    expect(processesWithEnv(run.marker)).toEqual([]);
  }, 120_000);

  it('with output.shared the agent writes its ranks into node 0\'s run directory in place', async () => {
    const run = await setup('import os\nprint("hello from rank", os.environ["RANK"], flush=True)\n');
    const node0 = run.start(0, undefined, '--set', 'output.shared=true');
    const node1 = run.start(1, undefined, '--set', 'output.shared=true');
    const [code0, code1] = await Promise.all([node0.exit, node1.exit]);
    expect(code1, node1.output()).toBe(0);
    expect(code0, node0.output()).toBe(0);
    for (const rank of [0, 1, 2, 3]) {
      expect(readFileSync(join(run.out, `rank-${rank}`, 'stdout.log'), 'utf8')).toContain(`hello from rank ${rank}`);
    }
    expect(readFileSync(join(run.out, 'launcher-node-1.log'), 'utf8')).toMatch(/node 1: joined node 0/);
    expect(existsSync(`${run.out}-node1`)).toBe(false);
    expect(run.manifest().ranks.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
  }, 120_000);
});

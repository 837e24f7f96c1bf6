// Two moe-run launchers on this machine, `--nnodes 2` on loopback, each starting 2 tinymoe ranks on
// the CPU: one run directory with 4 ranks whose torch.distributed world is 4; and killing the agent
// mid-run stops every rank on both "nodes", leaving no process behind and a manifest that says why.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/plan/ports.js';
import { processesWithEnv, startMoeRun, waitUntil } from '../launch/procs.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const python = process.env.MOE_RUN_PYTHON ?? '/usr/bin/python3';

/** One launcher, as a user starts it on a node (the built bin/moe-run, its own process). */
const startNode = (args: string[], env: Record<string, string>) => startMoeRun(repo, args, { MOE_RUN_PYTHON: python, ...env });

let base: string;
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'moe-two-nodes-')); });
afterAll(async () => { await rm(base, { recursive: true, force: true }); });

/** Both launchers of a 2-node run; `extra` goes to both. */
async function twoNodes(name: string, extra: string[]) {
  const token = randomBytes(16).toString('hex');
  const port = await freePort('127.0.0.1');
  const out = join(base, name);
  const common = ['--config', 'configs/tiny-cpu.yaml', '--nnodes', '2', '--rdzv', `127.0.0.1:${port}`, '--gpus', '2', '--out', out, '--quiet', ...extra];
  const env = { MOE_RUN_JOIN_TOKEN: token };
  const node0 = startNode([...common, '--node-rank', '0'], env);
  const node1 = startNode([...common, '--node-rank', '1'], env);
  return { node0, node1, out, marker: `MOE_RUN_JOIN_TOKEN=${token}` };
}

describe('two launchers on loopback, 2 ranks each', () => {
  it('make one run directory with 4 ranks, each in a torch.distributed world of 4', async () => {
    const { node0, node1, out, marker } = await twoNodes('ok', []);
    const [code0, code1] = await Promise.all([node0.exit, node1.exit]);
    expect(code1, node1.output()).toBe(0);
    expect(code0, node0.output()).toBe(0);

    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ status: 'ok', nnodes: 2, world_size: 4 });
    expect(manifest.ranks.map((r: { rank: number; node_rank: number; status: string }) => [r.rank, r.node_rank, r.status]))
      .toEqual([[0, 0, 'ok'], [1, 0, 'ok'], [2, 1, 'ok'], [3, 1, 'ok']]);
    // every rank measured its own clock against node 0's; the agent measured the node's
    expect(Object.keys(manifest.rendezvous.clock_offsets).sort()).toEqual(['0', '1', '2', '3']);
    expect(Object.keys(manifest.rendezvous.node_offsets)).toEqual(['1']);

    for (let rank = 0; rank < 4; rank++) {
      const dir = join(out, `rank-${rank}`);
      const files = await readdir(dir);
      expect(files, `rank-${rank}`).toEqual(expect.arrayContaining(['rank.json', 'ops.json', 'stdout.log', 'stderr.log']));
      expect(files.some((f) => f.endsWith('.pt.trace.json.gz')), `rank-${rank} trace`).toBe(true);
      const info = JSON.parse(await readFile(join(dir, 'rank.json'), 'utf8'));
      expect(info).toMatchObject({ rank, world_size: 4 });
      // what torch.distributed itself reported inside the rank
      const logs = (await readFile(join(dir, 'stderr.log'), 'utf8')) + (await readFile(join(dir, 'stdout.log'), 'utf8'));
      expect(logs).toContain(`rank ${rank}/4 on cpu`);
    }
    // node 1's results arrived and its own folder is gone; its samples are merged into node 0's
    expect(existsSync(`${out}-node1`)).toBe(false);
    expect(existsSync(join(out, 'launcher-node-1.log'))).toBe(true);
    if (existsSync(join(out, 'samples', 'process.csv'))) {
      const ranks = new Set(readFileSync(join(out, 'samples', 'process.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',')[1]));
      expect([...ranks].sort()).toEqual(['0', '1', '2', '3']);
    }
    // one timeline and one report over all four ranks
    const timeline = JSON.parse(gunzipSync(await readFile(join(out, 'timeline.json.gz'))).toString()) as { traceEvents: Array<{ ph: string; name: string; args?: { name?: string } }> };
    const processes = timeline.traceEvents.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => e.args?.name ?? '');
    expect(processes.filter((n) => /^rank [0-3] · CPU/.test(n))).toHaveLength(4);
    expect(await readFile(join(out, 'report.md'), 'utf8')).toMatch(/rank 3/);
    expect(processesWithEnv(marker)).toEqual([]);
  });

  it('killing the agent mid-run stops every rank on both nodes and the manifest names node 1', async () => {
    // long enough that the kill lands while the ranks evaluate
    const { node0, node1, out, marker } = await twoNodes('killed', ['--set', 'workload.max_valid_steps=100000', '--set', 'profile.enabled=false']);
    const log = join(out, 'launcher.log');
    const released = await waitUntil(() => existsSync(log) && /barrier start released/.test(readFileSync(log, 'utf8')), 90_000);
    expect(released, node0.output() + node1.output()).toBe(true);
    const before = processesWithEnv(marker);
    expect(before.length).toBeGreaterThanOrEqual(6); // 2 launchers + 4 ranks

    node1.signal('SIGKILL');
    const code0 = await node0.exit;
    expect(code0).not.toBe(0);
    expect(await waitUntil(() => processesWithEnv(marker).length === 0, 30_000), `left: ${processesWithEnv(marker)}`).toBe(true);

    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('failed');
    expect(manifest.failure).toMatchObject({ node: 1 });
    expect(manifest.failure.reason).toMatch(/node 1 .*ranks 2-3.* lost/);
    const byRank = Object.fromEntries(manifest.ranks.map((r: { rank: number; status: string }) => [r.rank, r.status]));
    expect(byRank[0]).toBe('stopped');
    expect(byRank[1]).toBe('stopped');
  });
});

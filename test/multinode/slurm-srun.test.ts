// The Slurm path with real srun: `srun -N 2 --ntasks-per-node 1 moe-run --config configs/tiny-cpu.yaml`
// on the local 2-node cluster of ../shared/slurm/start-local-cluster (nodes n1, n2 on this machine).
// Each launcher finds its place in Slurm's own environment (no --nnodes/--rdzv): node 0 is n1, the port
// comes from the job id, the token from the environment srun passes on. Skipped, saying why, where no
// cluster is up (CI starts one).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/run-dir.js';
import { ensureBuilt, repoRoot } from '../cli/cli.js';
import { processesWithEnv } from '../launch/procs.js';

/** Why the srun test cannot run here, or null when a cluster of at least 2 idle nodes answers. */
function noCluster(): string | null {
  try {
    const idle = execFileSync('sinfo', ['-h', '-t', 'idle', '-o', '%D'], { encoding: 'utf8', timeout: 10_000 }).trim();
    if (idle.split('\n').reduce((n, l) => n + (Number(l) || 0), 0) < 2) return `sinfo reports ${idle || 'no'} idle nodes, need 2`;
    execFileSync('srun', ['--version'], { timeout: 10_000 });
    return null;
  } catch (err) {
    return `no Slurm cluster (${(err as Error).message.split('\n')[0]}); start one with: sudo bash ../shared/slurm/start-local-cluster 2`;
  }
}

const why = noCluster();
if (why !== null) console.warn(`skipping the srun test: ${why}`);

describe.skipIf(why !== null)('under Slurm (real srun, 2 nodes)', () => {
  beforeAll(() => ensureBuilt(), 300_000);

  it('srun -N 2 --ntasks-per-node 1 moe-run: one run directory with both nodes\' ranks', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'moe-srun-')), 'run');
    const token = randomBytes(16).toString('hex');
    const child = spawn('srun', [
      '--nodes', '2', '--ntasks-per-node', '1', '--kill-on-bad-exit=1', '--job-name', 'moe-run-test',
      process.execPath, join(repoRoot, 'bin', 'moe-run'), '--config', 'configs/tiny-cpu.yaml', '--out', out, '--quiet',
      '--set', 'profile.enabled=false',
    ], {
      cwd: repoRoot,
      env: { ...process.env, MOE_RUN_JOIN_TOKEN: token, MOE_RUN_PYTHON: process.env.MOE_RUN_PYTHON ?? '/usr/bin/python3' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code, output).toBe(0);

    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
    expect(m).toMatchObject({ status: 'ok', nnodes: 2, world_size: 4 });
    // Slurm's node names, node 0 first: SLURMD_NODENAME on each node
    expect(m.ranks.map((r) => [r.rank, r.node_rank, r.host, r.status])).toEqual([
      [0, 0, 'n1', 'ok'], [1, 0, 'n1', 'ok'], [2, 1, 'n2', 'ok'], [3, 1, 'n2', 'ok'],
    ]);
    // node 0's address for everyone is the step's first host, the port derived from the job id
    expect(m.rendezvous?.host).toBe('n1');
    expect(m.rendezvous?.port).toBeGreaterThanOrEqual(20000);
    expect(m.ranks[2].env.MASTER_ADDR).toBe('n1');
    for (let rank = 0; rank < 4; rank++) {
      expect(await readdir(join(out, `rank-${rank}`))).toContain('stdout.log');
      const logs = readFileSync(join(out, `rank-${rank}`, 'stderr.log'), 'utf8') + readFileSync(join(out, `rank-${rank}`, 'stdout.log'), 'utf8');
      expect(logs).toContain(`rank ${rank}/4 on cpu`);
    }
    expect(processesWithEnv(`MOE_RUN_JOIN_TOKEN=${token}`)).toEqual([]);
  }, 300_000);
});

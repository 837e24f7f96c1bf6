// Node placement from flags and from Slurm's environment, with the variables as Slurm really sets them
// in an srun step (names and formats as printed by `srun env` on a 2-node cluster).
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import {
  expandHostlist,
  nodePlacement,
  parseRdzv,
  rendezvousBindAddress,
  rendezvousPortForJob,
  resolveJoinToken,
  slurmHostnames,
  type SlurmEnv,
} from '../../src/launch/slurm.js';

const tsOnly = async (list: string) => expandHostlist(list);

/** An srun step, one task per node, on `nodelist` (as Slurm 22/23 sets it). */
function srunEnv(nodelist: string, nnodes: number, nodeId: number, extra: SlurmEnv = {}): SlurmEnv {
  return {
    SLURM_JOB_ID: '4711',
    SLURM_JOBID: '4711',
    SLURM_JOB_NAME: 'moe',
    SLURM_JOB_NODELIST: nodelist,
    SLURM_NODELIST: nodelist,
    SLURM_JOB_NUM_NODES: String(nnodes),
    SLURM_NNODES: String(nnodes),
    SLURM_NODEID: String(nodeId),
    SLURM_PROCID: String(nodeId),
    SLURM_LOCALID: '0',
    SLURM_STEP_ID: '0',
    SLURM_STEPID: '0',
    SLURM_STEP_NODELIST: nodelist,
    SLURM_STEP_NUM_NODES: String(nnodes),
    SLURM_STEP_NUM_TASKS: String(nnodes),
    SLURM_NTASKS: String(nnodes),
    SLURM_TASKS_PER_NODE: `1(x${nnodes})`,
    SLURM_STEP_TASKS_PER_NODE: `1(x${nnodes})`,
    SLURM_CPUS_ON_NODE: '2',
    SLURM_CLUSTER_NAME: 'local',
    ...extra,
  };
}

describe('expandHostlist', () => {
  it.each([
    ['n1', ['n1']],
    ['n1,n2', ['n1', 'n2']],
    ['gnode[10,20-25]', ['gnode10', 'gnode20', 'gnode21', 'gnode22', 'gnode23', 'gnode24', 'gnode25']],
    ['a[01-03]b', ['a01b', 'a02b', 'a03b']],
    ['node[008-011]', ['node008', 'node009', 'node010', 'node011']],
    ['x[1-2],y[3]', ['x1', 'x2', 'y3']],
    ['r[1-2]n[01-02]', ['r1n01', 'r1n02', 'r2n01', 'r2n02']],
    ['gpu-a[9-10].cluster,login', ['gpu-a9.cluster', 'gpu-a10.cluster', 'login']],
  ])('%s', (list, hosts) => {
    expect(expandHostlist(list)).toEqual(hosts);
  });

  it.each(['n[1-', 'n1]', 'n[a-b]', 'n[5-3]', '', 'n[]'])('rejects "%s" with a UserError naming it', (list) => {
    expect(() => expandHostlist(list)).toThrow(UserError);
    expect(() => expandHostlist(list)).toThrow(/hostlist/);
  });

  it('slurmHostnames agrees with the TypeScript expansion (scontrol when present, else the fallback)', async () => {
    for (const list of ['gnode[10,20-22],x[01-02],n1', 'r[1-2]n[01-02]', 'a[01-03]b' /* scontrol 22.05 refuses this one */]) {
      expect(await slurmHostnames(list)).toEqual(expandHostlist(list));
    }
  });
});

describe('nodePlacement', () => {
  it('is a single node without flags or Slurm', async () => {
    const p = await nodePlacement({}, {}, tsOnly);
    expect(p).toMatchObject({ source: 'single', nnodes: 1, nodeRank: 0 });
    expect(p.rdzv).toBeUndefined();
    expect(rendezvousBindAddress(p, undefined)).toBe('127.0.0.1');
  });

  it('reads an srun step: node 0 is the first host, port derived from the job id, GPUs from SLURM_GPUS_ON_NODE', async () => {
    const env = srunEnv('gnode[10,20-21]', 3, 2, { SLURM_GPUS_ON_NODE: '8', SLURMD_NODENAME: 'gnode21' });
    const p = await nodePlacement({}, env, tsOnly);
    expect(p).toMatchObject({ source: 'slurm', nnodes: 3, nodeRank: 2, gpus: 8, hostname: 'gnode21', jobId: '4711' });
    expect(p.hosts).toEqual(['gnode10', 'gnode20', 'gnode21']);
    expect(p.rdzv).toEqual({ host: 'gnode10', port: rendezvousPortForJob('4711') });
    expect(rendezvousBindAddress(p, undefined)).toBe('gnode10');
    expect(rendezvousBindAddress(p, '0.0.0.0')).toBe('0.0.0.0');
  });

  it('every node of a job computes the same rendezvous', async () => {
    const list = 'n[1-4]';
    const seen = new Set<string>();
    for (let id = 0; id < 4; id++) {
      const p = await nodePlacement({}, srunEnv(list, 4, id), tsOnly);
      expect(p.nodeRank).toBe(id);
      seen.add(JSON.stringify(p.rdzv));
    }
    expect(seen.size).toBe(1);
  });

  it('uses the step, not the whole allocation, when srun runs on fewer nodes than the job has', async () => {
    const env = srunEnv('n[1-2]', 2, 1, { SLURM_JOB_NODELIST: 'n[1-4]', SLURM_NNODES: '4', SLURM_JOB_NUM_NODES: '4' });
    const p = await nodePlacement({}, env, tsOnly);
    expect(p).toMatchObject({ nnodes: 2, nodeRank: 1, hosts: ['n1', 'n2'] });
  });

  it('flags win over Slurm: --rdzv and --gpus override, --nnodes ignores Slurm entirely', async () => {
    const env = srunEnv('n[1-2]', 2, 1, { SLURM_GPUS_ON_NODE: '4' });
    const over = await nodePlacement({ rdzv: 'head:29400', gpus: 2 }, env, tsOnly);
    expect(over).toMatchObject({ source: 'slurm', nodeRank: 1, gpus: 2, rdzv: { host: 'head', port: 29400 } });
    const alone = await nodePlacement({ nnodes: 1 }, env, tsOnly);
    expect(alone).toMatchObject({ source: 'flags', nnodes: 1, nodeRank: 0 });
  });

  it('reads --nnodes/--node-rank/--rdzv', async () => {
    const p = await nodePlacement({ nnodes: 2, nodeRank: 1, rdzv: '127.0.0.1:29411', gpus: 2 }, {}, tsOnly);
    expect(p).toMatchObject({ source: 'flags', nnodes: 2, nodeRank: 1, gpus: 2, rdzv: { host: '127.0.0.1', port: 29411 } });
    expect(parseRdzv('[::1]:80', 'x')).toEqual({ host: '::1', port: 80 });
  });

  it.each([
    [{ nnodes: 2, rdzv: 'h:1' }, /--node-rank/],
    [{ nnodes: 2, nodeRank: 2, rdzv: 'h:1' }, /--node-rank 2: expected 0…1/],
    [{ nnodes: 2, nodeRank: 1 }, /--rdzv HOST:PORT/],
    [{ nnodes: 2, nodeRank: 0, rdzv: 'h:0' }, /fixed port/],
    [{ nnodes: 2, nodeRank: 0, rdzv: 'h' }, /expected HOST:PORT/],
    [{ nnodes: 2, nodeRank: 0, rdzv: 'h:70000' }, /expected HOST:PORT/],
    [{ nodeRank: 1 }, /needs --nnodes/],
  ])('rejects flags %j', async (flags, msg) => {
    await expect(nodePlacement(flags, {}, tsOnly)).rejects.toThrow(msg);
  });

  it('refuses a multi-node batch script without srun, and several tasks per node', async () => {
    const batch = srunEnv('n[1-2]', 2, 0);
    delete batch.SLURM_STEP_ID;
    delete batch.SLURM_STEPID;
    delete batch.SLURM_STEP_NUM_NODES;
    delete batch.SLURM_STEP_NUM_TASKS;
    delete batch.SLURM_STEP_NODELIST;
    await expect(nodePlacement({}, batch, tsOnly)).rejects.toThrow(/srun --nodes 2 --ntasks-per-node 1/);
    const twoPerNode = srunEnv('n[1-2]', 2, 0, { SLURM_STEP_NUM_TASKS: '4', SLURM_NTASKS: '4' });
    await expect(nodePlacement({}, twoPerNode, tsOnly)).rejects.toThrow(/one task per node/);
  });

  it('a one-node Slurm job is a single node', async () => {
    const p = await nodePlacement({}, srunEnv('n1', 1, 0, { SLURM_GPUS_ON_NODE: '8' }), tsOnly);
    expect(p).toMatchObject({ source: 'single', nnodes: 1, gpus: 8, jobId: '4711' });
  });
});

describe('rendezvousPortForJob', () => {
  it('is the same for a job everywhere, below the ephemeral range, and reads array/het job ids', () => {
    for (const id of ['1', '4711', '99999999', '123_4', '123+1']) {
      const p = rendezvousPortForJob(id);
      expect(p).toBeGreaterThanOrEqual(20000);
      expect(p).toBeLessThan(32768);
    }
    expect(rendezvousPortForJob('123_4')).toBe(rendezvousPortForJob('123'));
    expect(rendezvousPortForJob('4711')).not.toBe(rendezvousPortForJob('4712'));
    expect(() => rendezvousPortForJob('abc')).toThrow(UserError);
  });
});

describe('resolveJoinToken', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const place = (nnodes: number, nodeRank: number, extra = {}) => ({
    source: 'flags' as const, nnodes, nodeRank, hostname: 'h', ...extra,
  });
  const opts = { outputDir: 'runs', outputShared: false, waitMs: 3000 };

  it('takes MOE_RUN_JOIN_TOKEN first', async () => {
    const t = await resolveJoinToken(place(2, 1), opts, { MOE_RUN_JOIN_TOKEN: 'abcdef0123456789' });
    expect(t).toEqual({ token: 'abcdef0123456789', source: 'MOE_RUN_JOIN_TOKEN' });
    await expect(resolveJoinToken(place(2, 1), opts, { MOE_RUN_JOIN_TOKEN: 'short' })).rejects.toThrow(/8 to 256/);
  });

  it('node 0 writes the token file (0600), another node waits for it and reads the same', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moe-token-'));
    dirs.push(dir);
    const file = join(dir, 'sub', 'job.token');
    const agent = resolveJoinToken(place(2, 1, { tokenFile: file }), opts, {});
    await new Promise((r) => setTimeout(r, 300));
    const node0 = await resolveJoinToken(place(2, 0, { tokenFile: file }), opts, {});
    expect((await agent).token).toBe(node0.token);
    expect(node0.token).toMatch(/^[0-9a-f]{32}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // a second run with the same file reuses it rather than racing agents that already read it
    expect((await resolveJoinToken(place(2, 0, { tokenFile: file }), opts, {})).token).toBe(node0.token);
  });

  it('with output.shared under Slurm, the file lives in the output dir, named by the job', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moe-token-'));
    dirs.push(dir);
    const shared = { outputDir: dir, outputShared: true, waitMs: 3000 };
    const t = await resolveJoinToken(place(2, 0, { jobId: '77' }), shared, {});
    expect((await readFile(join(dir, '.moe-run-job77.token'), 'utf8')).trim()).toBe(t.token);
  });

  it('an agent names the file it waited for in vain', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moe-token-'));
    dirs.push(dir);
    await writeFile(join(dir, 'empty.token'), '');
    await expect(
      resolveJoinToken(place(2, 1, { tokenFile: join(dir, 'empty.token') }), { ...opts, waitMs: 300 }, {}),
    ).rejects.toThrow(/empty\.token did not appear/);
  });

  it('one node generates its own; several nodes without a way to share one get told what to set', async () => {
    const a = await resolveJoinToken(place(1, 0), opts, {});
    const b = await resolveJoinToken(place(1, 0), opts, {});
    expect(a.token).not.toBe(b.token);
    await expect(resolveJoinToken(place(2, 0), opts, {})).rejects.toThrow(/MOE_RUN_JOIN_TOKEN/);
  });
});

// Where this launcher stands among the nodes of a run: how many nodes, which one this is, where node 0's
// rendezvous listens, how many ranks each node starts, and the join token they share.
//
// Two sources, in this order of precedence:
//   1. flags: --nnodes N --node-rank R --rdzv HOST:PORT [--gpus G] [--token-file F]. Once --nnodes is
//      given, the Slurm environment is ignored entirely (so `--nnodes 1` runs alone inside a job).
//   2. Slurm, when moe-run runs as one task per node of an srun step (`srun --ntasks-per-node 1 moe-run`):
//      SLURM_STEP_NUM_NODES / SLURM_NNODES, SLURM_NODEID, SLURM_STEP_NODELIST / SLURM_JOB_NODELIST (node 0
//      is the first host), SLURM_GPUS_ON_NODE, SLURM_JOB_ID. The step's variables win over the job's
//      because `srun -N 2` inside a 4-node allocation runs on the step's 2 nodes, not the job's 4.
//      --rdzv and --gpus still override what Slurm says.
// Without either, the run is a single node and nothing here applies.
//
// Slurm places the nodes; moe-run only reads what Slurm decided (DESIGN.md "Ranks and the rendezvous").
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { UserError } from '../errors.js';

/** Flags of the CLI that place this node (all optional). */
export interface PlacementFlags {
  nnodes?: number;
  nodeRank?: number;
  /** "HOST:PORT" of node 0's rendezvous */
  rdzv?: string;
  /** ranks (GPUs) per node */
  gpus?: number;
  tokenFile?: string;
}

/** This node's place in the run. */
export interface NodePlacement {
  /** where the facts came from */
  source: 'single' | 'flags' | 'slurm';
  nnodes: number;
  nodeRank: number;
  /** ranks per node when the flags or Slurm say so; undefined → the config's `gpus` */
  gpus?: number;
  /** this node's name: Slurm's node name (distinct even when nodes share a machine), else the hostname */
  hostname: string;
  /** node 0's rendezvous as the other nodes reach it; undefined on a single node (the config decides) */
  rdzv?: { host: string; port: number };
  /** every node's host, node 0 first (Slurm only) */
  hosts?: string[];
  jobId?: string;
  tokenFile?: string;
}

/** Variables Slurm sets that this module reads (the subset of process.env it needs). */
export type SlurmEnv = Record<string, string | undefined>;

/**
 * Decides this node's placement from the flags and the environment (see the precedence above).
 * `expand` turns a Slurm hostlist into host names (default: `scontrol show hostnames`, else TypeScript).
 */
export async function nodePlacement(
  flags: PlacementFlags,
  env: SlurmEnv = process.env,
  expand: (hostlist: string) => Promise<string[]> = slurmHostnames,
): Promise<NodePlacement> {
  const gpus = flags.gpus;
  if (flags.nnodes !== undefined) return placementFromFlags(flags, env);
  if (flags.nodeRank !== undefined) {
    throw new UserError('--node-rank needs --nnodes (and --rdzv HOST:PORT of node 0): give all three on every node');
  }
  const slurmNodes = env.SLURM_STEP_NUM_NODES ?? env.SLURM_NNODES;
  if (env.SLURM_JOB_ID !== undefined && slurmNodes !== undefined && intOf(slurmNodes, 'SLURM_NNODES') > 1) {
    return placementFromSlurm(flags, env, expand);
  }
  return {
    source: 'single',
    nnodes: 1,
    nodeRank: 0,
    gpus: gpus ?? slurmGpusOnNode(env),
    hostname: env.SLURMD_NODENAME || osHostname(),
    rdzv: flags.rdzv !== undefined ? parseRdzv(flags.rdzv, '--rdzv') : undefined,
    jobId: env.SLURM_JOB_ID,
    tokenFile: flags.tokenFile,
  };
}

function placementFromFlags(flags: PlacementFlags, env: SlurmEnv): NodePlacement {
  const nnodes = flags.nnodes!;
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new UserError(`--nnodes ${nnodes}: expected a whole number ≥ 1`);
  const nodeRank = flags.nodeRank ?? 0;
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) {
    throw new UserError(`--node-rank ${nodeRank}: expected 0…${nnodes - 1} for --nnodes ${nnodes}`);
  }
  if (nnodes > 1 && flags.nodeRank === undefined) {
    throw new UserError(`--nnodes ${nnodes} needs --node-rank on every node (0 on the node that hosts the rendezvous)`);
  }
  if (nnodes > 1 && flags.rdzv === undefined) {
    throw new UserError(`--nnodes ${nnodes} needs --rdzv HOST:PORT: node 0's address and a port, the same on every node`);
  }
  const rdzv = flags.rdzv !== undefined ? parseRdzv(flags.rdzv, '--rdzv') : undefined;
  if (nnodes > 1 && rdzv!.port === 0) {
    throw new UserError('--rdzv HOST:0: several nodes need a fixed port that every node knows, e.g. --rdzv node0:29400');
  }
  return {
    source: 'flags',
    nnodes,
    nodeRank,
    gpus: flags.gpus,
    hostname: osHostname(),
    rdzv,
    jobId: env.SLURM_JOB_ID,
    tokenFile: flags.tokenFile,
  };
}

async function placementFromSlurm(
  flags: PlacementFlags,
  env: SlurmEnv,
  expand: (hostlist: string) => Promise<string[]>,
): Promise<NodePlacement> {
  const jobId = env.SLURM_JOB_ID!;
  const nnodesVar = env.SLURM_STEP_NUM_NODES !== undefined ? 'SLURM_STEP_NUM_NODES' : 'SLURM_NNODES';
  const nnodes = intOf(env[nnodesVar]!, nnodesVar);
  // Inside the batch script itself (no srun step) only one launcher would start, and node 0 would wait
  // for agents that never come: say how to start one launcher per node instead.
  if (env.SLURM_STEP_ID === undefined || env.SLURM_NODEID === undefined) {
    throw new UserError(
      `Slurm job ${jobId} has ${nnodes} nodes but moe-run is not running in an srun step: ` +
        `start it with \`srun --nodes ${nnodes} --ntasks-per-node 1 moe-run …\` (or pass --nnodes 1 to use one node)`,
    );
  }
  const tasks = env.SLURM_STEP_NUM_TASKS ?? env.SLURM_NTASKS;
  if (tasks !== undefined && intOf(tasks, 'SLURM_STEP_NUM_TASKS') !== nnodes) {
    throw new UserError(
      `Slurm step has ${tasks} tasks on ${nnodes} nodes: moe-run starts the ranks itself and needs exactly one task per node ` +
        `(srun --ntasks-per-node 1)`,
    );
  }
  const nodeRank = intOf(env.SLURM_NODEID, 'SLURM_NODEID');
  const listVar = env.SLURM_STEP_NODELIST !== undefined ? 'SLURM_STEP_NODELIST' : 'SLURM_JOB_NODELIST';
  const nodelist = env[listVar];
  if (!nodelist) throw new UserError(`Slurm job ${jobId}: neither SLURM_STEP_NODELIST nor SLURM_JOB_NODELIST is set`);
  const hosts = await expand(nodelist);
  if (hosts.length !== nnodes) {
    throw new UserError(`${listVar}=${nodelist} names ${hosts.length} hosts but ${nnodesVar}=${nnodes}`);
  }
  const rdzv = flags.rdzv !== undefined
    ? parseRdzv(flags.rdzv, '--rdzv')
    : { host: hosts[0], port: rendezvousPortForJob(jobId) };
  return {
    source: 'slurm',
    nnodes,
    nodeRank,
    gpus: flags.gpus ?? slurmGpusOnNode(env),
    hostname: env.SLURMD_NODENAME || hosts[nodeRank] || osHostname(),
    rdzv,
    hosts,
    jobId,
    tokenFile: flags.tokenFile,
  };
}

/** SLURM_GPUS_ON_NODE (set when the job asked for GPUs), else undefined. */
function slurmGpusOnNode(env: SlurmEnv): number | undefined {
  const v = env.SLURM_GPUS_ON_NODE;
  if (v === undefined || v === '') return undefined;
  const n = intOf(v, 'SLURM_GPUS_ON_NODE');
  return n > 0 ? n : undefined;
}

function intOf(v: string | undefined, name: string): number {
  if (v === undefined || !/^\d+$/.test(v.trim())) throw new UserError(`${name}=${v ?? ''}: expected a whole number`);
  return Number(v.trim());
}

/** "host:port", "[v6addr]:port" → parts; a clear error naming the flag otherwise. */
export function parseRdzv(s: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UserError(`${what} ${s}: expected HOST:PORT, e.g. node0:29400`);
  return { host: m[1] ?? m[2], port };
}

/**
 * The rendezvous port of a Slurm job when none is given: 20000 + (job id mod 10000), so every node of
 * the job computes the same port without talking, two jobs sharing a node rarely collide (only if their
 * ids differ by a multiple of 10000), and the port stays below Linux's ephemeral range (32768…).
 * A busy port is reported with this number and the advice to pass --rdzv HOST:PORT.
 */
export function rendezvousPortForJob(jobId: string): number {
  // Heterogeneous jobs and arrays name jobs "123+0" or "123_4": the leading number identifies the job.
  const m = /^(\d+)/.exec(jobId);
  if (!m) throw new UserError(`SLURM_JOB_ID=${jobId}: expected a number; pass --rdzv HOST:PORT instead`);
  return 20000 + Number(BigInt(m[1]) % 10000n);
}

// ───────────────────────────── hostlists ─────────────────────────────

/**
 * Slurm's hostlist syntax in TypeScript: "n1,n2", "gnode[10,20-25]", "a[01-03]b" (zero padding kept),
 * "r[1-2]n[01-02]" (several brackets: every combination, left to right), "x[1-2],y[3]".
 */
export function expandHostlist(list: string): string[] {
  const hosts: string[] = [];
  for (const item of splitTopLevel(list.trim())) {
    if (item === '') continue;
    // Split "pre[ranges]mid[ranges]post" into literal text and bracket groups.
    const parts: string[][] = [];
    let rest = item;
    for (;;) {
      const open = rest.indexOf('[');
      if (open < 0) {
        if (rest.includes(']')) throw hostlistError(list, `"]" without "["`);
        parts.push([rest]);
        break;
      }
      const close = rest.indexOf(']', open);
      if (close < 0) throw hostlistError(list, `"[" without "]"`);
      if (rest.slice(0, open).includes(']')) throw hostlistError(list, `"]" without "["`);
      parts.push([rest.slice(0, open)]);
      parts.push(expandRanges(rest.slice(open + 1, close), list));
      rest = rest.slice(close + 1);
    }
    let names = [''];
    for (const choices of parts) names = names.flatMap((pre) => choices.map((c) => pre + c));
    hosts.push(...names);
  }
  if (hosts.length === 0) throw hostlistError(list, 'no hosts');
  return hosts;
}

/** Commas separate hosts only outside brackets. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '[') depth++;
    else if (s[i] === ']') depth--;
    else if (s[i] === ',' && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

/** "10,20-25" → ["10","20",…,"25"]; "01-03" → ["01","02","03"] (width of the lower bound). */
function expandRanges(body: string, list: string): string[] {
  const out: string[] = [];
  for (const r of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(r.trim());
    if (!m) throw hostlistError(list, `"[${body}]" is not a list of numbers and ranges`);
    const width = m[1].length;
    const lo = Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : lo;
    if (hi < lo) throw hostlistError(list, `range ${r} goes down`);
    if (hi - lo > 100_000) throw hostlistError(list, `range ${r} is too long`);
    for (let n = lo; n <= hi; n++) out.push(String(n).padStart(width, '0'));
  }
  return out;
}

function hostlistError(list: string, why: string): UserError {
  return new UserError(`Slurm hostlist "${list}": ${why}`);
}

/**
 * Host names of a Slurm hostlist: `scontrol show hostnames LIST` when scontrol is on PATH (Slurm's own
 * reading, exact for every syntax it accepts), else expandHostlist. The list is passed as an argument,
 * never through a shell.
 */
export async function slurmHostnames(list: string): Promise<string[]> {
  try {
    const { stdout } = await execa('scontrol', ['show', 'hostnames', list], { timeout: 10_000 });
    const hosts = stdout.split('\n').map((h) => h.trim()).filter(Boolean);
    if (hosts.length > 0) return hosts;
  } catch {
    // not on PATH, or no controller reachable: Slurm's syntax is simple enough to expand here
  }
  return expandHostlist(list);
}

// ───────────────────────────── join token ─────────────────────────────

export const TOKEN_ENV = 'MOE_RUN_JOIN_TOKEN';

/**
 * The join token every node presents to node 0's rendezvous. In this order:
 *   1. MOE_RUN_JOIN_TOKEN in the environment (srun passes the batch script's environment to every node);
 *   2. a token file: --token-file, or, with `output.shared: true`, `<output.dir>/.moe-run-job<ID>.token`
 *      under Slurm: node 0 creates it (mode 0600) unless it exists, the others wait for it to appear;
 *   3. a single node generates one of its own.
 * Several nodes with none of these cannot share a secret: that is a UserError saying what to set.
 */
export async function resolveJoinToken(
  placement: NodePlacement,
  opts: { outputDir: string; outputShared: boolean; waitMs: number },
  env: SlurmEnv = process.env,
): Promise<{ token: string; source: string }> {
  const fromEnv = env[TOKEN_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!/^[\x21-\x7e]{8,256}$/.test(fromEnv)) {
      throw new UserError(`${TOKEN_ENV}: expected 8 to 256 printable characters without spaces`);
    }
    return { token: fromEnv, source: TOKEN_ENV };
  }
  const file = placement.tokenFile !== undefined
    ? resolve(placement.tokenFile)
    : opts.outputShared && placement.jobId !== undefined
      ? join(resolve(opts.outputDir), `.moe-run-job${placement.jobId}.token`)
      : undefined;
  if (file !== undefined) {
    const token = placement.nodeRank === 0 ? await createOrReadToken(file) : await waitForToken(file, opts.waitMs);
    return { token, source: file };
  }
  if (placement.nnodes === 1) return { token: newToken(), source: 'generated' };
  throw new UserError(
    `${placement.nnodes} nodes need a shared join token: set ${TOKEN_ENV} for every node ` +
      `(e.g. \`export ${TOKEN_ENV}=$(openssl rand -hex 16)\` in the sbatch script), ` +
      'or pass --token-file PATH on a file system every node sees, or set output.shared: true under Slurm',
  );
}

export function newToken(): string {
  return randomBytes(16).toString('hex');
}

/** Node 0: the file's token if it already holds one, else a new one written atomically (0600). */
async function createOrReadToken(file: string): Promise<string> {
  const existing = await readToken(file);
  if (existing !== null) return existing;
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const token = newToken();
  await writeFile(tmp, token + '\n', { mode: 0o600 });
  try {
    // link() fails if the file appeared meanwhile, so a reader never sees a half-written or replaced token
    await link(tmp, file);
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new UserError(`token file ${file}: ${(err as Error).message}`);
    }
    const raced = await readToken(file);
    if (raced === null) throw new UserError(`token file ${file} exists but holds no token: delete it`);
    return raced;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Other nodes: the token once node 0 has written it (a shared file system may take a moment). */
async function waitForToken(file: string, waitMs: number): Promise<string> {
  const until = Date.now() + waitMs;
  for (;;) {
    const token = await readToken(file);
    if (token !== null) return token;
    if (Date.now() >= until) {
      throw new UserError(
        `token file ${file} did not appear within ${Math.round(waitMs / 1000)} s: node 0 writes it; ` +
          'is the path on a file system every node sees?',
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function readToken(file: string): Promise<string | null> {
  try {
    const t = (await readFile(file, 'utf8')).trim();
    return t === '' ? null : t;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new UserError(`token file ${file}: ${(err as Error).message}`);
  }
}

/**
 * The address node 0's rendezvous listens on: `rendezvous.bind` when configured; else loopback for a
 * single node (nothing outside the machine needs it) and, for several nodes, node 0's rendezvous host,
 * the interface the other nodes reach (a host name that resolves to 127.0.1.1, as Debian's /etc/hosts
 * does, needs `rendezvous.bind: 0.0.0.0`).
 */
export function rendezvousBindAddress(placement: NodePlacement, configuredBind: string | undefined): string {
  if (configuredBind !== undefined) return configuredBind;
  return placement.nnodes > 1 && placement.rdzv ? placement.rdzv.host : '127.0.0.1';
}

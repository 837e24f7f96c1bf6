// The launcher of a node other than node 0: an agent. It joins node 0's rendezvous as role "agent",
// measures its clock against node 0's, starts this node's ranks, tells node 0 how each one ends, stops
// them when node 0 stops the run (or disappears), and finally sends their folders and samples to node 0.
//
// Design (DESIGN.md "Ranks and the rendezvous"): the ranks of every node connect straight to node 0's
// rendezvous (MOE_RUN_RDZV points there), so the start barrier spans all ranks of all nodes and each rank
// measures its own clock offset against the reference clock directly: no offset is composed, nothing is
// relayed. The agent's own connection speaks for the node: its offset puts the agent's timestamps (rank
// start/end, samples) on the reference clock, and its loss tells node 0 that the node is gone. An agent
// killed outright can do nothing for its ranks; node 0 does: losing the agent, it aborts every rank's
// connection, and the bootstrap exits on an abort or a lost connection (patches/moe_run_bootstrap.py).
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { RunConfig } from '../config/schema.js';
import { UserError } from '../errors.js';
import { gatherFacts } from '../plan/facts.js';
import { planRun } from '../plan/index.js';
import { RunDir } from '../run-dir.js';
import { ranksOf } from './agents.js';
import { sendArtifacts } from './artifacts.js';
import { RendezvousClient } from './client.js';
import { ReferenceClock } from './clock.js';
import { LauncherLog } from './record.js';
import type { AgentMessage, ClientMessage, ServerMessage } from './protocol.js';
import { resolveJoinToken, type NodePlacement } from './slurm.js';
import { FORWARDED_SIGNALS, Supervisor, describeExit, type RankExit, type Tee } from './supervisor.js';
import { startRankSamplers, type SamplerContext, type Samplers } from './samplers.js';

export interface AgentOptions {
  config: RunConfig;
  /** this node's place; nodeRank ≥ 1 and rdzv set */
  placement: NodePlacement;
  /** --out as given on this node: its own folder is `<out>-node<N>` (default: output.dir/<node 0's run name>-node<N>) */
  outDir?: string;
  tee: Tee;
  /** console output (rank lines per --tee, and the agent's own messages) */
  print: (line: string) => void;
  /** the node's result, printed even with --quiet */
  result: (line: string) => void;
  /** as LaunchOptions.startSamplers (tests) */
  startSamplers?: (ctx: SamplerContext) => Promise<Samplers>;
}

/** Runs this node's part of the run; resolves with the exit code for moe-run. */
export async function runAgent(opts: AgentOptions): Promise<number> {
  const { config, placement } = opts;
  const node = placement.nodeRank;
  const rdzv = placement.rdzv;
  if (rdzv === undefined || node === 0) throw new Error('runAgent: needs node ≥ 1 and node 0\'s rendezvous');
  const ranksPerNode = config.gpus;
  const ranks = ranksOf(node, ranksPerNode);
  const clock = new ReferenceClock(); // this node's wall clock; node 0's differs by `offset`
  const { token } = await resolveJoinToken(placement, {
    outputDir: config.output.dir, outputShared: config.output.shared, waitMs: config.rendezvous.timeout_s * 1000,
  });

  opts.print(`moe-run: node ${node} of ${placement.nnodes}, ranks ${ranks[0]}-${ranks[ranks.length - 1]}: joining node 0 at ${rdzv.host}:${rdzv.port}`);
  const client = await joinNode0(rdzv, token, {
    role: 'agent', node, ranks, pid: process.pid, host: placement.hostname,
  }, clock, config.rendezvous.timeout_s * 1000);
  const welcome = client.welcome as Extract<ServerMessage, { type: 'welcome' }>;
  if (welcome.world_size !== placement.nnodes * ranksPerNode) {
    client.close();
    throw new UserError(
      `node 0 runs ${welcome.world_size} ranks but this node expects ${placement.nnodes} × ${ranksPerNode}: ` +
        'give every node the same config and --gpus',
    );
  }
  if (welcome.run === undefined || welcome.master_port === undefined) {
    client.close();
    throw new UserError('node 0 did not say which run to join: is node 0 running the same moe-run version?');
  }
  let clockEstimate: { offsetNs: bigint; rttNs: bigint };
  try {
    clockEstimate = await client.syncClock(16);
  } catch (err) {
    client.close();
    throw new UserError(`node ${node}: node 0 stopped before this node could start: ${(err as Error).message}`);
  }
  const { offsetNs, rttNs } = clockEstimate;
  const reference = () => (clock.nowNs() + offsetNs).toString();

  // Shared output: write into node 0's run directory in place. Otherwise a folder of this node's own,
  // "<run>-node<N>" next to where the run directory would be (srun gives every node the same --out),
  // sent to node 0 at the end and removed once node 0 has it. One left by an earlier run would mix its
  // files into this one's, so it is refused.
  const shared = config.output.shared;
  const runDir = new RunDir(shared ? welcome.run
    : `${resolve(opts.outDir ?? join(config.output.dir, basename(welcome.run)))}-node${node}`);
  if (!shared && existsSync(runDir.root)) {
    client.close();
    throw new UserError(`${runDir.root} exists (left by an earlier run on node ${node}): remove it, or give another --out`);
  }
  await runDir.create();
  // (lines written once the log has been sent to node 0 are dropped: LauncherLog ignores them)
  const launcherLog = new LauncherLog(shared ? runDir.nodeLauncherLog(node) : runDir.launcherLog);
  const log = (line: string) => launcherLog.write(`node ${node}: ${line}`);
  log(`joined node 0 at ${rdzv.host}:${rdzv.port}; run ${welcome.run}; clock offset ${offsetNs} ns (round trip ${rttNs} ns)`);

  const facts = await gatherFacts(config, {
    runDir: runDir.root,
    nnodes: placement.nnodes,
    nodeRank: node,
    masterAddr: rdzv.host,
    masterPort: welcome.master_port,
    rendezvous: { host: rdzv.host, port: rdzv.port, token },
    hostname: placement.hostname,
  });
  const plan = planRun(config, facts);
  for (const r of plan.ranks) await runDir.createRankDir(r.rank);

  const supervisor = new Supervisor({
    ranks: plan.ranks,
    graceS: config.launch.grace_s,
    tee: opts.tee,
    clock,
    out: (_stream, line) => opts.print(line),
    log,
  });
  const send = (msg: AgentMessage) => client.send(msg as unknown as ClientMessage);
  supervisor.on('spawn', (rank, pid) => send({ type: 'rank_started', rank, pid, t_ns: reference() }));
  supervisor.on('exit', (exit) => send(rankEnded(exit, supervisor.failure?.reason, reference())));

  // Node 0 stops the run (another rank failed, a timeout, a signal there) or disappears: stop ours.
  let finished = false;
  let node0Gone = false;
  const listening = (async () => {
    for (;;) {
      const msg = await client.next();
      if (msg === null) {
        node0Gone = !finished;
        if (!finished) {
          supervisor.fail({ kind: 'lost', reason: `lost the connection to node 0 at ${rdzv.host}:${rdzv.port}`, exitCode: 1, node: 0 });
        }
        return;
      }
      if (msg.type === 'abort' || msg.type === 'error') {
        supervisor.fail({ kind: 'error', reason: `node 0 stopped the run: ${msg.reason}`, exitCode: 1 });
      }
    }
  })();
  const onSignal = (sig: NodeJS.Signals) => supervisor.signal(sig);
  for (const sig of FORWARDED_SIGNALS) process.on(sig, onSignal);

  const pids = new Map<number, number>();
  supervisor.on('spawn', (rank, pid) => pids.set(rank, pid));
  const samplesRunDir = shared ? new NodeSamplesView(runDir.root, node) : runDir;
  // on this node's clock: node 0 moves the rows onto its own with this node's offset when it merges them
  const samplers = await (opts.startSamplers ?? startRankSamplers)({
    runDir: samplesRunDir, config, plan, clock, pids, log, note: (text) => log(`note: ${text}`),
  });
  let exits: RankExit[];
  try {
    exits = await supervisor.run();
  } finally {
    for (const sig of FORWARDED_SIGNALS) process.off(sig, onSignal);
    await samplers.stop();
  }
  const failed = exits.filter((e) => e.exitCode !== 0 || e.signal !== null || e.spawnError !== undefined);
  log(`ranks ended: ${exits.map((e) => `rank ${e.rank} ${describeExit(e)}`).join('; ')}`);

  // The artifacts go before "done": node 0 takes "done" to mean this node's results are in place.
  let exitCode = supervisor.failure?.exitCode ?? (failed.length > 0 ? 1 : 0);
  let kept = !shared;
  if (!shared && !node0Gone) {
    launcherLog.close();
    try {
      const sent = await sendArtifacts({
        host: rdzv.host, port: welcome.artifacts_port!, token, node, root: runDir.root, ranks,
      });
      opts.print(`moe-run: node ${node}: sent ${sent.files} files (${sent.bytes} bytes) to node 0`);
      await rm(runDir.root, { recursive: true, force: true });
      kept = false;
    } catch (err) {
      opts.result(`moe-run: node ${node}: ${(err as Error).message}`);
      exitCode ||= 1;
    }
  }
  finished = true;
  client.send({ type: 'status', state: 'done', detail: failed.length === 0 ? 'all ranks ok' : `${failed.length} rank(s) failed` });
  client.close();
  await listening;
  const outcome = supervisor.failure ? `stopped: ${supervisor.failure.reason}` : exitCode === 0 ? 'ok' : 'failed';
  log(`result: ${outcome}`);
  launcherLog.close();
  opts.result(`moe-run: node ${node}: ${outcome}; ${kept ? `its ranks' output is in ${runDir.root}` : 'the run directory is on node 0'}`);
  return exitCode;
}

/** How a rank ended, on the reference clock, for node 0's manifest and failure handling. */
function rankEnded(exit: RankExit, failureReason: string | undefined, tNs: string): AgentMessage {
  const ok = exit.exitCode === 0 && exit.signal === null && exit.spawnError === undefined;
  return {
    type: 'rank_ended',
    rank: exit.rank,
    t_ns: tNs,
    exit_code: exit.exitCode,
    signal: exit.signal,
    status: ok ? 'ok' : exit.spawnError !== undefined ? 'not-started' : exit.stopped ? 'stopped' : 'failed',
    reason: ok ? undefined : exit.stopped && failureReason ? `stopped: ${failureReason}` : describeExit(exit),
    stderr_tail: ok ? undefined : exit.stderrTail.slice(-10).map((l) => l.slice(0, 500)),
  };
}

/**
 * Joins node 0's rendezvous, retrying while nobody listens there yet: srun starts every node's moe-run
 * at once, and node 0 needs a moment to bind. A refusal (wrong token, a rank clash) is final.
 */
async function joinNode0(
  rdzv: { host: string; port: number },
  token: string,
  hello: { role: 'agent'; node: number; ranks: number[]; pid: number; host: string },
  clock: ReferenceClock,
  timeoutMs: number,
): Promise<RendezvousClient> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await RendezvousClient.join(rdzv, { token, ...hello }, () => clock.nowNs());
    } catch (err) {
      const message = (err as Error).message;
      if (message.startsWith('rendezvous refused')) {
        throw new UserError(`node 0's rendezvous at ${rdzv.host}:${rdzv.port} refused node ${hello.node}: ${message}`);
      }
      if (Date.now() >= until) {
        throw new UserError(
          `node ${hello.node} could not reach node 0's rendezvous at ${rdzv.host}:${rdzv.port} within ` +
            `${Math.round(timeoutMs / 1000)} s (${message}): is moe-run running on node 0, and the port open between the nodes?`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * Node 0's run directory as an agent's samplers see it on a shared file system: their files go to
 * samples/node-N/ (node 0 merges them), not into node 0's own samples/*.csv.
 */
class NodeSamplesView extends RunDir {
  private readonly nodeSamples: string;
  constructor(root: string, node: number) {
    super(root);
    this.nodeSamples = new RunDir(root).nodeSamplesDir(node);
  }
  override get samplesDir(): string {
    return this.nodeSamples;
  }
}

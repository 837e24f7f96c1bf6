// Node 0's view of the other nodes (multi-node runs): which agents joined, how their ranks ended, and
// when a node is lost. It turns what the agents say on the rendezvous into the run's failures, the same
// way the supervisor turns a local rank's exit into one:
//   - a node that has not joined when `rendezvous.timeout_s` is up is named, with its ranks;
//   - an agent whose connection closes before it said "done" (it died, its machine went away) stops
//     the run, naming the node and its ranks;
//   - a remote rank that fails (or is stopped by its own agent) stops the run, naming rank and node.
// launchRun passes every failure to the supervisor (local ranks) and to the rendezvous (abort to every
// rank and agent), so one failure anywhere stops every rank on every node.
import { EventEmitter } from 'node:events';
import { UserError } from '../errors.js';
import type { RunConfig } from '../config/schema.js';
import { freePort, planRun, type NodeFacts } from '../plan/index.js';
import type { RankRecord, RunDir } from '../run-dir.js';
import { mergeNodeSamples } from './agent-samples.js';
import { ArtifactReceiver } from './artifacts.js';
import type { AgentMessage } from './protocol.js';
import { rankRecord } from './record.js';
import type { Peer, RendezvousServer } from './rendezvous.js';
import { rendezvousBindAddress, resolveJoinToken, type NodePlacement } from './slurm.js';
import type { Failure, Supervisor } from './supervisor.js';

export type RankEnded = Extract<AgentMessage, { type: 'rank_ended' }>;

export interface RemoteNode {
  node: number;
  ranks: number[];
  /** its agent's host name, once joined */
  host?: string;
  state: 'waiting' | 'joined' | 'done' | 'lost';
}

export interface AgentHubEvents {
  failure: [failure: Failure];
}

/** "ranks 2-3" / "rank 4" */
export function rankSpan(ranks: readonly number[]): string {
  if (ranks.length === 1) return `rank ${ranks[0]}`;
  const contiguous = ranks.every((r, i) => i === 0 || r === ranks[i - 1] + 1);
  return contiguous ? `ranks ${ranks[0]}-${ranks[ranks.length - 1]}` : `ranks ${ranks.join(', ')}`;
}

export class AgentHub extends EventEmitter<AgentHubEvents> {
  readonly nodes = new Map<number, RemoteNode>();
  /** remote rank → how its agent says it started */
  readonly started = new Map<number, { pid: number; t_ns: string }>();
  /** remote rank → how its agent says it ended */
  readonly ended = new Map<number, RankEnded>();
  private failed = false;
  private joinTimer?: NodeJS.Timeout;
  private settle?: () => void;
  private readonly finished: Promise<void>;

  constructor(
    private readonly opts: {
      server: RendezvousServer;
      nnodes: number;
      ranksPerNode: number;
      /** how long node 0 waits for every agent to join (rendezvous.timeout_s) */
      joinTimeoutS: number;
      log: (line: string) => void;
    },
  ) {
    super();
    for (let node = 1; node < opts.nnodes; node++) this.nodes.set(node, { node, ranks: ranksOf(node, opts.ranksPerNode), state: 'waiting' });
    this.finished = new Promise((resolve) => { this.settle = resolve; });
    const { server } = opts;
    server.on('connect', (peer) => peer.role === 'agent' && this.joined(peer));
    server.on('lost', (peer) => peer.role === 'agent' && this.lost(peer));
    server.on('agent-message', (peer, msg) => this.message(peer, msg));
    this.joinTimer = setTimeout(() => this.joinTimeout(), opts.joinTimeoutS * 1000);
    this.joinTimer.unref();
  }

  /** Resolves once every node is done or lost, or, after a failure, has not joined. */
  whenFinished(): Promise<void> {
    this.check();
    return this.finished;
  }

  /** The run failed elsewhere: nodes that never joined no longer hold up the end. */
  runFailed(): void {
    this.failed = true;
    clearTimeout(this.joinTimer);
    this.check();
  }

  close(): void {
    clearTimeout(this.joinTimer);
  }

  private joined(peer: Peer): void {
    const n = this.nodes.get(peer.node!);
    if (n === undefined) return this.fail({ kind: 'error', reason: `an agent claims node ${peer.node}, but this run has nodes 0-${this.opts.nnodes - 1}`, exitCode: 2 });
    if (peer.ranks.join() !== n.ranks.join()) {
      return this.fail({
        kind: 'error', node: n.node, exitCode: 2,
        reason: `node ${n.node} wants to start ${rankSpan(peer.ranks)} but node 0 expects ${rankSpan(n.ranks)}: give every node the same config and --gpus`,
      });
    }
    n.host = peer.host;
    n.state = 'joined';
    this.opts.log(`node ${n.node} joined from ${peer.host} (pid ${peer.pid}) for ${rankSpan(n.ranks)}`);
    if ([...this.nodes.values()].every((x) => x.state !== 'waiting')) clearTimeout(this.joinTimer);
  }

  private lost(peer: Peer): void {
    const n = this.nodes.get(peer.node!);
    if (n === undefined || n.state === 'done') return;
    n.state = 'lost';
    this.fail({
      kind: 'lost', node: n.node, exitCode: 1,
      reason: `node ${n.node} (${n.host ?? 'unknown host'}, ${rankSpan(n.ranks)}) was lost: its moe-run closed the connection before its ranks were done`,
    });
    this.check();
  }

  private message(peer: Peer, msg: AgentMessage | { type: 'status'; state: string; detail?: string }): void {
    const n = this.nodes.get(peer.node!);
    if (n === undefined) return;
    switch (msg.type) {
      case 'rank_started':
        if (n.ranks.includes(msg.rank)) this.started.set(msg.rank, { pid: msg.pid, t_ns: msg.t_ns });
        return;
      case 'rank_ended':
        if (!n.ranks.includes(msg.rank)) return;
        this.ended.set(msg.rank, msg);
        this.opts.log(`rank ${msg.rank} on node ${n.node}: ${msg.status}${msg.reason ? ` (${msg.reason})` : ''}`);
        // a rank stopped because the run is already failing is a consequence, not a cause
        if (msg.status !== 'ok' && !(msg.status === 'stopped' && this.failed)) {
          this.fail({
            kind: 'rank', rank: msg.rank, node: n.node, exitCode: exitCodeOf(msg),
            rankExitCode: msg.exit_code, signal: msg.signal, stderrTail: msg.stderr_tail,
            reason: `rank ${msg.rank} on node ${n.node} (${n.host}) ${msg.reason ?? msg.status}`,
          });
        }
        return;
      case 'status':
        if (msg.state === 'done') {
          n.state = 'done';
          this.opts.log(`node ${n.node} is done${msg.detail ? `: ${msg.detail}` : ''}`);
          this.check();
        }
    }
  }

  private joinTimeout(): void {
    const missing = [...this.nodes.values()].filter((n) => n.state === 'waiting');
    if (missing.length === 0) return;
    this.fail({
      kind: 'timeout', node: missing[0].node, exitCode: 1,
      reason: `${missing.map((n) => `node ${n.node} (${rankSpan(n.ranks)})`).join(', ')} never joined the rendezvous within ` +
        `${this.opts.joinTimeoutS} s: is moe-run running there, with the same --rdzv and token?`,
    });
  }

  private fail(failure: Failure): void {
    this.opts.log(failure.reason);
    this.emit('failure', failure);
    this.runFailed();
  }

  private check(): void {
    const open = [...this.nodes.values()].some((n) => n.state === 'joined' || (n.state === 'waiting' && !this.failed));
    if (!open) this.settle?.();
  }
}

function exitCodeOf(msg: RankEnded): number {
  if (msg.status === 'not-started') return 127;
  if (msg.exit_code !== null && msg.exit_code !== 0) return msg.exit_code;
  return 1;
}

// ───────────────────────────── node 0 of several ─────────────────────────────

/**
 * What launchRun does differently on node 0 of several nodes, in the order it needs it:
 *   prepare()  the shared token, the address to bind (not loopback), the artifact listener;
 *   attach()   the agent hub, its failures into the supervisor, every remote rank in the manifest;
 *   finish()   once the local ranks have ended: wait for the other nodes, take in their results
 *              (ranks' folders, samples on the reference clock), and record how their ranks ended.
 */
export class NodeZero {
  hub?: AgentHub;
  /** extra fields of every welcome: what an agent needs to join the run */
  readonly welcome: Record<string, unknown> = {};
  private constructor(
    readonly placement: NodePlacement,
    readonly token: string,
    readonly bind: string,
    /** torch.distributed's port on node 0, chosen before any agent can ask for it */
    readonly masterPort: number,
    private readonly receiver: ArtifactReceiver | undefined,
    private readonly config: RunConfig,
    private readonly runDir: RunDir,
    private readonly log: (line: string) => void,
  ) {}

  static async prepare(opts: {
    config: RunConfig;
    placement: NodePlacement;
    runDir: RunDir;
    log: (line: string) => void;
  }): Promise<NodeZero> {
    const { config, placement, runDir } = opts;
    const { token } = await resolveJoinToken(placement, {
      outputDir: config.output.dir, outputShared: config.output.shared, waitMs: config.rendezvous.timeout_s * 1000,
    });
    const bind = rendezvousBindAddress(placement, config.rendezvous.bind);
    const nodes = new Map<number, number[]>();
    for (let n = 1; n < placement.nnodes; n++) nodes.set(n, ranksOf(n, config.gpus));
    // With a shared output directory the agents write in place and send nothing.
    const receiver = config.output.shared ? undefined
      : await ArtifactReceiver.listen({ runDir, token, nodes, bind, log: opts.log });
    const masterPort = config.workload.master_port || await freePort();
    const zero = new NodeZero(placement, token, bind, masterPort, receiver, config, runDir, opts.log);
    // complete before the rendezvous listens: an agent may be waiting to join already
    Object.assign(zero.welcome, { run: runDir.root, master_port: masterPort, ...(receiver ? { artifacts_port: receiver.port } : {}) });
    return zero;
  }

  /** server.listen(), with what to do about a busy port when several nodes share it. */
  async listen(server: RendezvousServer): Promise<{ host: string; port: number }> {
    try {
      return await server.listen();
    } catch (err) {
      if (err instanceof UserError && / is busy: /.test(err.message)) {
        const source = this.placement.source === 'slurm' && this.placement.jobId !== undefined
          ? `, derived from Slurm job ${this.placement.jobId}` : '';
        throw new UserError(
          `rendezvous port ${this.port} on ${this.bind} is busy${source}: give every node --rdzv ${this.placement.rdzv!.host}:PORT with a free PORT`,
        );
      }
      throw err;
    }
  }

  /** The rendezvous port on node 0 (the same number on every node). */
  get port(): number {
    return this.placement.rdzv!.port;
  }

  /** Wires the agents' news into the run; returns the planned records of the other nodes' ranks. */
  attach(server: RendezvousServer, supervisor: Supervisor, facts: NodeFacts): RankRecord[] {
    const hub = new AgentHub({
      server, nnodes: this.placement.nnodes, ranksPerNode: this.config.gpus,
      joinTimeoutS: this.config.rendezvous.timeout_s, log: this.log,
    });
    this.hub = hub;
    hub.on('failure', (failure) => supervisor.fail(failure));
    supervisor.on('failure', () => hub.runFailed());
    // The other nodes plan the same ranks from the same config; planning them here too (pure) puts
    // their command lines in the manifest without sending them over.
    const records: RankRecord[] = [];
    for (let node = 1; node < this.placement.nnodes; node++) {
      const host = this.placement.hosts?.[node] ?? `node ${node}`;
      for (const r of planRun(this.config, { ...facts, nodeRank: node, hostname: host }).ranks) records.push(rankRecord(r, host));
    }
    return records;
  }

  /**
   * After the local ranks: waits (at most `rendezvous.timeout_s`) for every other node to be done or
   * lost, takes in their results, and fills in their ranks' records. Returns notes for the manifest.
   */
  async finish(ranks: RankRecord[], nodeOffsets: Record<string, { offset_ns: string }>, supervisor: Supervisor): Promise<string[]> {
    const hub = this.hub!;
    const notes: string[] = [];
    const limitS = this.config.rendezvous.timeout_s;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      hub.whenFinished(),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          const open = [...hub.nodes.values()].filter((n) => n.state === 'joined' || n.state === 'waiting');
          supervisor.fail({
            kind: 'timeout', exitCode: 1, node: open[0]?.node,
            reason: `${open.map((n) => `node ${n.node} (${rankSpan(n.ranks)})`).join(', ')} did not finish within ${limitS} s of node 0's ranks`,
          });
          resolve();
        }, limitS * 1000);
      }),
    ]);
    clearTimeout(timer);
    for (const n of hub.nodes.values()) {
      if (this.receiver && n.state === 'done') {
        // an agent sends its results before it says "done": they are in place, or the transfer failed
        await this.receiver.waitFor(n.node, 1000).catch((err: Error) => notes.push(`node ${n.node}: ${err.message}`));
      } else if (n.state !== 'done') {
        notes.push(`node ${n.node} (${rankSpan(n.ranks)}) ${n.state === 'lost' ? 'was lost' : 'never joined'}: its ranks' folders and samples are missing`);
      }
      const offset = BigInt(nodeOffsets[String(n.node)]?.offset_ns ?? '0');
      notes.push(...await mergeNodeSamples(this.runDir, n.node, offset));
    }
    for (const r of ranks) {
      if (r.node_rank === 0) continue;
      const node = hub.nodes.get(r.node_rank);
      if (node?.host) r.host = node.host;
      const started = hub.started.get(r.rank);
      const ended = hub.ended.get(r.rank);
      if (started) Object.assign(r, { pid: started.pid, started_ns: started.t_ns, status: 'running' });
      if (ended) {
        Object.assign(r, { ended_ns: ended.t_ns, exit_code: ended.exit_code, signal: ended.signal, status: ended.status });
        if (ended.reason) r.reason = ended.reason;
      } else if (started) {
        Object.assign(r, { status: 'failed', reason: `its node ${node?.state === 'lost' ? 'was lost' : 'did not say how it ended'}` });
      } else if (node?.state !== 'done') {
        r.reason = `node ${r.node_rank} ${node?.state === 'lost' ? 'was lost' : 'never joined'}`;
      }
    }
    return notes;
  }

  async close(): Promise<void> {
    this.hub?.close();
    await this.receiver?.close();
  }
}

/** The global ranks of node `node`. */
export function ranksOf(node: number, ranksPerNode: number): number[] {
  return Array.from({ length: ranksPerNode }, (_, i) => node * ranksPerNode + i);
}

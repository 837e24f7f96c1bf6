// The rendezvous server (DESIGN.md "Ranks and the rendezvous", docs/contracts.md "Wire protocol"): one TCP
// connection per rank (or per agent, a launcher of another node speaking for its ranks). It admits a
// connection only after a hello with the run's join token, answers clock pings on the reference clock,
// releases named barriers once every rank has entered them, and turns rank status into events for the
// progress display. A bad peer only ever loses its own connection: the server logs why and goes on.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { UserError } from '../errors.js';
import { ReferenceClock } from './clock.js';
import type { AgentMessage, ClientMessage, RankState, ServerMessage } from './protocol.js';
import { LineSplitter, encodeMessage, parseClientMessage } from './wire.js';

export interface RendezvousOptions {
  worldSize: number;
  /** rendezvous.timeout_s: how long a barrier waits for its last rank, counted from its first */
  barrierTimeoutS: number;
  /** the run's join token; default: 16 random bytes, hex */
  token?: string;
  /** address to listen on; default loopback (one node needs nothing else) */
  bind?: string;
  /** default 0: a free port */
  port?: number;
  clock?: ReferenceClock;
  /** a connection that has not said hello by then is closed */
  helloTimeoutMs?: number;
  /** where the server's reasons go (launcher.log) */
  log?: (line: string) => void;
  /** more fields for every welcome (multi-node: what an agent needs to know about the run) */
  welcome?: Record<string, unknown>;
}

export type Role = 'rank' | 'agent';

/** Who is on the other end of a connection: one rank, or an agent speaking for several. */
export interface Peer {
  role: Role;
  /** the ranks this connection speaks for ([rank] for a rank) */
  ranks: number[];
  rank?: number;
  node?: number;
  pid: number;
  host: string;
}

export interface RendezvousEvents {
  connect: [peer: Peer, tNs: string];
  clock: [peer: Peer, offsetNs: string, rttNs: string];
  status: [rank: number, status: { state: RankState; step?: number; steps?: number; detail?: string }, tNs: string];
  'barrier-enter': [name: string, ranks: number[], tNs: string];
  release: [name: string, tNs: string];
  'barrier-timeout': [name: string, missing: number[], reason: string, tNs: string];
  /** the connection closed before the peer said "done": the rank (or the agent's node) died or lost us */
  lost: [peer: Peer, tNs: string];
  rejected: [remote: string, reason: string];
  /** multi-node: what an agent says about its node (its ranks' starts and ends, its own status) */
  'agent-message': [peer: Peer, msg: AgentMessage | Extract<ClientMessage, { type: 'status' }>];
}

interface Connection {
  socket: Socket;
  remote: string;
  splitter: LineSplitter;
  peer?: Peer;
  done: boolean;
  closing: boolean;
  helloTimer?: NodeJS.Timeout;
}

interface Barrier {
  entered: Set<number>;
  timer?: NodeJS.Timeout;
  state: 'open' | 'released' | 'timed-out';
}

export class RendezvousServer extends EventEmitter<RendezvousEvents> {
  readonly token: string;
  readonly worldSize: number;
  readonly clock: ReferenceClock;
  /** barrier name → release time on the reference clock (manifest.rendezvous.releases) */
  readonly releases: Record<string, string> = {};
  /** rank → the clock offset it settled on (manifest.rendezvous.clock_offsets) */
  readonly clockOffsets: Record<string, { offset_ns: string; rtt_ns: string }> = {};
  /** node → its agent's clock offset (manifest.rendezvous.node_offsets) */
  readonly nodeOffsets: Record<string, { offset_ns: string; rtt_ns: string }> = {};

  private readonly server: Server;
  private readonly tokenDigest: Buffer;
  private readonly connections = new Set<Connection>();
  private readonly byRank = new Map<number, Connection>();
  private readonly everConnected = new Set<number>();
  private readonly barriers = new Map<string, Barrier>();
  private readonly log: (line: string) => void;
  private readonly helloTimeoutMs: number;
  private abortReason?: string;

  constructor(private readonly opts: RendezvousOptions) {
    super();
    this.worldSize = opts.worldSize;
    this.token = opts.token ?? randomBytes(16).toString('hex');
    this.tokenDigest = digest(this.token);
    this.clock = opts.clock ?? new ReferenceClock();
    this.log = opts.log ?? (() => {});
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 10_000;
    this.server = createServer((socket) => this.accept(socket));
  }

  /** Listens; resolves to the bound address. A busy port or an address not on this host is a UserError. */
  async listen(): Promise<{ host: string; port: number }> {
    const host = this.opts.bind ?? '127.0.0.1';
    const port = this.opts.port ?? 0;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') {
          reject(new UserError(`rendezvous port ${port} on ${host} is busy: set rendezvous.port to another port, or 0 for a free one`));
        } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') {
          reject(new UserError(`rendezvous.bind ${host} is not an address of this host: give one of its interfaces, or leave it unset for loopback`));
        } else {
          reject(err);
        }
      };
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('rendezvous: no TCP address after listen');
    this.log(`rendezvous: listening on ${address.address}:${address.port} for ${this.worldSize} rank(s)`);
    return { host: address.address, port: address.port };
  }

  /** Whether `rank` ever presented a good hello (a rank that exits before that died before connecting). */
  hasConnected(rank: number): boolean {
    return this.everConnected.has(rank);
  }

  /** Barriers some rank waits at (entered, neither released nor timed out), with the ranks in them. */
  openBarriers(): Array<{ name: string; entered: number[] }> {
    return [...this.barriers].filter(([, b]) => b.state === 'open').map(([name, b]) => ({ name, entered: [...b.entered].sort((x, y) => x - y) }));
  }

  /** Tells every connected peer the run is being stopped; later connections hear it too. */
  abort(reason: string): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    for (const barrier of this.barriers.values()) clearTimeout(barrier.timer);
    this.broadcast({ type: 'abort', reason });
  }

  async close(): Promise<void> {
    for (const barrier of this.barriers.values()) clearTimeout(barrier.timer);
    for (const conn of this.connections) conn.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ───────────────────────────── connections ─────────────────────────────

  private accept(socket: Socket): void {
    const conn: Connection = {
      socket,
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      splitter: new LineSplitter(),
      done: false,
      closing: false,
    };
    this.connections.add(conn);
    socket.setNoDelay(true);
    conn.helloTimer = setTimeout(() => this.reject(conn, `no hello within ${this.helloTimeoutMs / 1000} s`), this.helloTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      // Taken before any parsing so that a ping's t1 is as close to its arrival as the event loop allows.
      const arrivedNs = this.clock.nowNs();
      if (conn.closing) return;
      const { lines, error } = conn.splitter.push(chunk);
      for (const line of lines) {
        if (conn.closing) return;
        this.handleLine(conn, line, arrivedNs);
      }
      if (error !== undefined && !conn.closing) this.reject(conn, error);
    });
    socket.on('error', (err) => this.log(`rendezvous: ${describe(conn)} from ${conn.remote}: ${err.message}`));
    socket.on('close', () => this.closed(conn));
  }

  private handleLine(conn: Connection, line: string, arrivedNs: bigint): void {
    const parsed = parseClientMessage(line);
    if (!parsed.ok) return this.reject(conn, parsed.reason);
    const msg = parsed.message;
    if (conn.peer === undefined) {
      if (msg.type !== 'hello') return this.reject(conn, `first message must be hello, got ${msg.type}`);
      return this.hello(conn, msg);
    }
    switch (msg.type) {
      case 'hello':
        return this.reject(conn, 'hello sent twice');
      case 'ping': {
        const t1 = arrivedNs.toString();
        return this.send(conn, { type: 'pong', t0: msg.t0, t1, t2: this.clock.now() });
      }
      case 'clock': {
        const record = { offset_ns: msg.offset_ns, rtt_ns: msg.rtt_ns };
        if (conn.peer.role === 'rank') this.clockOffsets[String(conn.peer.rank)] = record;
        else this.nodeOffsets[String(conn.peer.node)] = record;
        this.emit('clock', conn.peer, msg.offset_ns, msg.rtt_ns);
        return;
      }
      case 'status': {
        if (msg.state === 'done') conn.done = true;
        const { type: _type, ...status } = msg;
        const tNs = this.clock.now();
        // an agent's status is its node's; its ranks report their own
        if (conn.peer.role === 'agent') this.emit('agent-message', conn.peer, msg);
        else this.emit('status', conn.peer.rank!, status, tNs);
        return;
      }
      case 'barrier':
        return this.enterBarrier(conn, msg.name);
      case 'rank_started':
      case 'rank_ended':
        if (conn.peer.role !== 'agent') return this.reject(conn, `only an agent sends ${msg.type}`);
        if (!conn.peer.ranks.includes(msg.rank)) return this.reject(conn, `rank ${msg.rank} is not one of this agent's ranks`);
        this.emit('agent-message', conn.peer, msg);
        return;
    }
  }

  private hello(conn: Connection, msg: Extract<ClientMessage, { type: 'hello' }>): void {
    // The token first: nothing else a stranger sends is looked at. Digests make the comparison
    // constant-time whatever the lengths (timingSafeEqual itself throws on unequal lengths).
    if (!timingSafeEqual(digest(msg.token), this.tokenDigest)) return this.reject(conn, 'wrong join token');
    const ranks = msg.role === 'rank' ? [msg.rank] : [...new Set(msg.ranks)];
    for (const rank of ranks) {
      if (rank >= this.worldSize) return this.reject(conn, `rank ${rank} is outside the world of ${this.worldSize} rank(s)`);
      if (msg.role === 'rank' && this.byRank.has(rank)) return this.reject(conn, `rank ${rank} is already connected`);
    }
    if (msg.role === 'agent' && [...this.connections].some((c) => c.peer?.role === 'agent' && c.peer.node === msg.node)) {
      return this.reject(conn, `node ${msg.node} already has an agent`);
    }
    clearTimeout(conn.helloTimer);
    conn.peer = msg.role === 'rank'
      ? { role: 'rank', ranks, rank: msg.rank, pid: msg.pid, host: msg.host }
      : { role: 'agent', ranks, node: msg.node, pid: msg.pid, host: msg.host };
    // Multi-node (src/launch/agent.ts): an agent speaks for its node, and its ranks connect here
    // themselves (barriers, clocks, status), so only a rank's own hello claims the rank's connection.
    for (const rank of ranks) {
      if (msg.role === 'rank') this.byRank.set(rank, conn);
      this.everConnected.add(rank);
    }
    this.log(`rendezvous: ${describe(conn)} joined from ${conn.remote} (pid ${msg.pid} on ${msg.host})`);
    this.send(conn, { ...this.opts.welcome, type: 'welcome', world_size: this.worldSize });
    this.emit('connect', conn.peer, this.clock.now());
    if (this.abortReason !== undefined) this.send(conn, { type: 'abort', reason: this.abortReason });
  }

  private closed(conn: Connection): void {
    clearTimeout(conn.helloTimer);
    this.connections.delete(conn);
    const peer = conn.peer;
    if (peer === undefined) return;
    // Free the ranks so that a rank may reconnect; what it already entered stays entered.
    for (const rank of peer.ranks) if (this.byRank.get(rank) === conn) this.byRank.delete(rank);
    if (!conn.done) {
      this.log(`rendezvous: ${describe(conn)} closed its connection before it was done`);
      this.emit('lost', peer, this.clock.now());
    }
  }

  /** Tells the peer why, closes its connection, and logs the reason; the server carries on. */
  private reject(conn: Connection, reason: string): void {
    if (conn.closing) return;
    conn.closing = true;
    clearTimeout(conn.helloTimer);
    this.log(`rendezvous: closing ${describe(conn)} from ${conn.remote}: ${reason}`);
    this.emit('rejected', conn.remote, reason);
    // Its lines are no longer read; a peer that never reads our error is cut off shortly after.
    conn.socket.end(encodeMessage({ type: 'error', reason }));
    setTimeout(() => conn.socket.destroy(), 1000).unref();
  }

  private send(conn: Connection, msg: ServerMessage): void {
    if (!conn.closing && conn.socket.writable) conn.socket.write(encodeMessage(msg));
  }

  private broadcast(msg: ServerMessage): void {
    for (const conn of this.connections) if (conn.peer !== undefined) this.send(conn, msg);
  }

  // ───────────────────────────── barriers ─────────────────────────────

  private enterBarrier(conn: Connection, name: string): void {
    let barrier = this.barriers.get(name);
    if (barrier === undefined) {
      barrier = { entered: new Set(), state: 'open' };
      this.barriers.set(name, barrier);
    }
    if (barrier.state === 'released') return this.reject(conn, `barrier ${name} was already released`);
    if (this.abortReason !== undefined) return this.send(conn, { type: 'abort', reason: this.abortReason });
    const peer = conn.peer!;
    for (const rank of peer.ranks) barrier.entered.add(rank);
    this.emit('barrier-enter', name, peer.ranks, this.clock.now());
    if (barrier.entered.size === this.worldSize) return this.release(name, barrier);
    // Counted from the first rank in: ranks load at different speeds, but not by more than this.
    barrier.timer ??= setTimeout(() => this.timeOut(name, barrier), this.opts.barrierTimeoutS * 1000);
  }

  private release(name: string, barrier: Barrier): void {
    clearTimeout(barrier.timer);
    barrier.state = 'released';
    const tNs = this.clock.now();
    this.releases[name] = tNs;
    this.broadcast({ type: 'release', name, t_ns: tNs });
    this.log(`rendezvous: barrier ${name} released at ${tNs}`);
    this.emit('release', name, tNs);
  }

  private timeOut(name: string, barrier: Barrier): void {
    barrier.state = 'timed-out';
    const missing = [...Array(this.worldSize).keys()].filter((r) => !barrier.entered.has(r));
    const reason = `${missing.length === 1 ? 'rank' : 'ranks'} [${missing.join(', ')}] never reached barrier ${name} within ${this.opts.barrierTimeoutS} s`;
    this.log(`rendezvous: ${reason}`);
    this.emit('barrier-timeout', name, missing, reason, this.clock.now());
    this.abort(reason);
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function describe(conn: Connection): string {
  const peer = conn.peer;
  if (peer === undefined) return 'a connection';
  return peer.role === 'rank' ? `rank ${peer.rank}` : `agent of node ${peer.node} (ranks ${peer.ranks.join(',')})`;
}

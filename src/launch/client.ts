// A rendezvous client in TypeScript: what a rank's bootstrap does in Python (hello, clock sync, status,
// barriers), for launchers of other nodes (agents) and for tests that need a well-behaved peer.
import { connect, type Socket } from 'node:net';
import { ReferenceClock, clockOffset, type PingSample } from './clock.js';
import type { ClientMessage, ServerMessage } from './protocol.js';
import { LineSplitter, encodeMessage } from './wire.js';

export type Hello = Omit<Extract<ClientMessage, { type: 'hello' }>, 'type'>;

export class RendezvousClient {
  private readonly splitter = new LineSplitter();
  private readonly queue: ServerMessage[] = [];
  private waiters: Array<() => void> = [];
  private ended = false;
  /** the server's abort reason, once one came */
  aborted?: string;
  /** the server's welcome (world size, and what else the server tells a peer that joins) */
  welcome!: Extract<ServerMessage, { type: 'welcome' }>;

  private constructor(
    private readonly socket: Socket,
    /** this side's wall clock in epoch ns (tests skew it) */
    private readonly now: () => bigint,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      const { lines, error } = this.splitter.push(chunk);
      try {
        for (const line of lines) {
          const msg = JSON.parse(line) as ServerMessage;
          if (msg.type === 'abort') this.aborted = msg.reason;
          this.queue.push(msg);
        }
        if (error !== undefined) throw new Error(error);
      } catch {
        // Not our server speaking: drop the connection, which waiters see as closed.
        socket.destroy();
      }
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  /** Connects and says hello; resolves once welcomed, rejects with the server's reason if refused. */
  static async join(
    address: { host: string; port: number },
    hello: Hello,
    now: () => bigint = defaultNow(),
  ): Promise<RendezvousClient> {
    const socket = connect(address.port, address.host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RendezvousClient(socket, now);
    client.send({ type: 'hello', ...hello } as ClientMessage);
    const reply = await client.next();
    if (reply?.type !== 'welcome') {
      client.close();
      throw new Error(`rendezvous refused the hello: ${reply?.type === 'error' ? reply.reason : 'connection closed'}`);
    }
    client.welcome = reply;
    return client;
  }

  send(msg: ClientMessage): void {
    this.socket.write(encodeMessage(msg));
  }

  /** The next message from the server, or null once the connection has closed. */
  async next(): Promise<ServerMessage | null> {
    while (this.queue.length === 0) {
      if (this.ended) return null;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.queue.shift()!;
  }

  /** `count` ping-pongs, one at a time; reports and returns the offset from the tightest round trip. */
  async syncClock(count = 8): Promise<{ offsetNs: bigint; rttNs: bigint }> {
    const samples: PingSample[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = this.now();
      this.send({ type: 'ping', t0: t0.toString() });
      const pong = await this.expect('pong');
      const t3 = this.now();
      samples.push({ t0, t1: BigInt(pong.t1), t2: BigInt(pong.t2), t3 });
    }
    const best = clockOffset(samples);
    this.send({ type: 'clock', offset_ns: best.offsetNs.toString(), rtt_ns: best.rttNs.toString() });
    return best;
  }

  /** Enters barrier `name`; resolves to its release time, rejects on abort or a closed connection. */
  async barrier(name: string): Promise<string> {
    this.send({ type: 'barrier', name });
    const release = await this.expect('release');
    if (release.name !== name) throw new Error(`rendezvous released barrier ${release.name} while waiting for ${name}`);
    return release.t_ns;
  }

  close(): void {
    this.socket.end();
  }

  private async expect<T extends ServerMessage['type']>(type: T): Promise<Extract<ServerMessage, { type: T }>> {
    for (;;) {
      const msg = await this.next();
      if (msg === null) throw new Error(`rendezvous closed the connection while waiting for ${type}`);
      if (msg.type === type) return msg as Extract<ServerMessage, { type: T }>;
      if (msg.type === 'abort' || msg.type === 'error') throw new Error(`rendezvous ${msg.type}: ${msg.reason}`);
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function defaultNow(): () => bigint {
  const clock = new ReferenceClock();
  return () => clock.nowNs();
}

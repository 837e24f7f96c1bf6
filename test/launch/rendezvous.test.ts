// The rendezvous server over real loopback sockets: well-behaved clients (RendezvousClient) and raw
// sockets that send what no client should.
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RendezvousClient } from '../../src/launch/client.js';
import { ReferenceClock } from '../../src/launch/clock.js';
import { RendezvousServer, type RendezvousOptions } from '../../src/launch/rendezvous.js';

const servers: RendezvousServer[] = [];
const clients: RendezvousClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(opts: Partial<RendezvousOptions> & { worldSize: number }) {
  const log: string[] = [];
  const server = new RendezvousServer({ barrierTimeoutS: 30, log: (l) => log.push(l), ...opts });
  servers.push(server);
  const address = await server.listen();
  return { server, address, log };
}

async function join(server: RendezvousServer, address: { host: string; port: number }, rank: number, now?: () => bigint) {
  const client = await RendezvousClient.join(address, { token: server.token, role: 'rank', rank, pid: process.pid, host: 'test' }, now);
  clients.push(client);
  return client;
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

/** Sends raw bytes, then collects whatever the server answers until it closes the connection. */
function raw(address: { host: string; port: number }, bytes: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(address.port, address.host);
    let got = '';
    socket.on('data', (d) => { got += d.toString(); });
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
    socket.on('connect', () => socket.write(bytes));
  });
}

describe('RendezvousServer', () => {
  it('binds loopback by default and releases a barrier to every rank at one reference time', async () => {
    const { server, address } = await start({ worldSize: 4 });
    expect(address.host).toBe('127.0.0.1');
    const entered: number[] = [];
    server.on('barrier-enter', (_name, ranks) => entered.push(...ranks));
    const ranks = await Promise.all([0, 1, 2, 3].map((r) => join(server, address, r)));
    const before = server.clock.nowNs();
    const releases = await Promise.all(ranks.map((c) => c.barrier('start')));
    expect(new Set(releases).size).toBe(1);
    expect(BigInt(releases[0])).toBeGreaterThanOrEqual(before);
    expect(server.releases).toEqual({ start: releases[0] });
    expect(entered.sort()).toEqual([0, 1, 2, 3]);
  });

  it('names the ranks missing at the timeout and aborts the ones waiting', async () => {
    const { server, address, log } = await start({ worldSize: 3, barrierTimeoutS: 0.3 });
    const timeouts: Array<[string, number[]]> = [];
    server.on('barrier-timeout', (name, missing) => timeouts.push([name, missing]));
    const [c0, c2] = [await join(server, address, 0), await join(server, address, 2)];
    await join(server, address, 1); // connected, but never enters the barrier
    const results = await Promise.allSettled([c0.barrier('start'), c2.barrier('start')]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      if (r.status === 'rejected') expect(String(r.reason)).toMatch(/abort: rank \[1\] never reached barrier start within 0.3 s/);
    }
    expect(timeouts).toEqual([['start', [1]]]);
    expect(server.releases).toEqual({});
    expect(log.join('\n')).toMatch(/never reached barrier start/);
  });

  it('refuses a wrong token, of any length, and keeps serving the ranks', async () => {
    const { server, address, log } = await start({ worldSize: 2 });
    for (const token of ['nope', server.token.slice(0, -1) + 'x', server.token + 'x', '']) {
      await expect(RendezvousClient.join(address, { token, role: 'rank', rank: 0, pid: 1, host: 'stray' }))
        .rejects.toThrow(/wrong join token/);
    }
    expect(server.hasConnected(0)).toBe(false);
    const [a, b] = [await join(server, address, 0), await join(server, address, 1)];
    await Promise.all([a.barrier('start'), b.barrier('start')]);
    expect(log.filter((l) => l.includes('wrong join token'))).toHaveLength(4);
  });

  it('closes connections that send garbage, an over-long line, or no hello, and goes on', async () => {
    const { server, address, log } = await start({ worldSize: 1, helloTimeoutMs: 300 });
    const rejected: string[] = [];
    server.on('rejected', (_remote, reason) => rejected.push(reason));
    const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
    expect(await raw(address, Buffer.concat([garbage, Buffer.from('\n')]))).toMatch(/"type":"error"/);
    expect(await raw(address, 'x'.repeat(70 * 1024))).toMatch(/line longer than 65536 bytes/);
    expect(await raw(address, '{"type":"ping","t0":"1"}\n')).toMatch(/first message must be hello/);
    expect(await raw(address, '')).toMatch(/no hello within 0.3 s/);
    expect(await raw(address, `{"type":"hello","token":"${server.token}","role":"rank","rank":5,"pid":1,"host":"h"}\n`))
      .toMatch(/rank 5 is outside the world of 1 rank/);
    expect(rejected).toHaveLength(5);
    expect(log.filter((l) => l.includes('closing a connection'))).toHaveLength(5);
    const c = await join(server, address, 0);
    expect(await c.barrier('start')).toBe(server.releases.start);
  });

  it('refuses a second connection for a rank that is connected', async () => {
    const { server, address } = await start({ worldSize: 2 });
    await join(server, address, 1);
    await expect(join(server, address, 1)).rejects.toThrow(/rank 1 is already connected/);
  });

  it('measures the offset of a client whose clock is skewed by a known amount, within 1 ms', async () => {
    const clock = new ReferenceClock();
    const { server, address } = await start({ worldSize: 2, clock });
    const offsets: string[] = [];
    server.on('clock', (_peer, offsetNs) => offsets.push(offsetNs));
    // Rank 1's clock runs 2.5 s (and a few ns) ahead of the reference, rank 0's 40 ms behind it.
    const skews = [-40_000_000n, 2_500_000_123n];
    for (const [rank, skew] of skews.entries()) {
      const c = await join(server, address, rank, () => clock.nowNs() + skew);
      const { offsetNs, rttNs } = await c.syncClock(8);
      expect(rttNs).toBeGreaterThanOrEqual(0n);
      const error = offsetNs + skew; // the true offset is −skew
      expect(error < 0n ? -error : error).toBeLessThan(1_000_000n);
      await until(() => server.clockOffsets[String(rank)] !== undefined);
      expect(server.clockOffsets[String(rank)]).toEqual({ offset_ns: offsetNs.toString(), rtt_ns: rttNs.toString() });
    }
    expect(offsets).toHaveLength(2);
  });

  it('reports a rank whose connection closes before it is done, not one that said done', async () => {
    const { server, address } = await start({ worldSize: 2 });
    const lost: number[] = [];
    server.on('lost', (peer) => lost.push(...peer.ranks));
    const statuses: string[] = [];
    server.on('status', (rank, s) => statuses.push(`${rank}:${s.state}`));
    const [c0, c1] = [await join(server, address, 0), await join(server, address, 1)];
    c0.send({ type: 'status', state: 'done' });
    c1.send({ type: 'status', state: 'loading', detail: 'checkpoint' });
    c0.close();
    c1.close();
    await until(() => lost.length > 0 && statuses.length === 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(lost).toEqual([1]);
    expect(statuses.sort()).toEqual(['0:done', '1:loading']);
  });

  it('counts an agent for all the ranks it speaks for', async () => {
    const { server, address } = await start({ worldSize: 3 });
    const rank0 = await join(server, address, 0);
    const agent = await RendezvousClient.join(address, { token: server.token, role: 'agent', node: 1, ranks: [1, 2], pid: 7, host: 'node1' });
    clients.push(agent);
    await agent.syncClock(2);
    await until(() => Object.keys(server.nodeOffsets).length > 0);
    expect(Object.keys(server.nodeOffsets)).toEqual(['1']);
    const [a, b] = await Promise.all([rank0.barrier('start'), agent.barrier('start')]);
    expect(a).toBe(b);
    expect(server.hasConnected(2)).toBe(true);
  });

  it('passes agent messages on from an agent, for its own ranks only, and refuses them from a rank', async () => {
    const { server, address } = await start({ worldSize: 3 });
    const got: string[] = [];
    server.on('agent-message', (peer, msg) => got.push(`${peer.node}:${msg.type}`));
    const agent = await RendezvousClient.join(address, { token: server.token, role: 'agent', node: 1, ranks: [1, 2], pid: 7, host: 'node1' });
    clients.push(agent);
    agent.send({ type: 'rank_started', rank: 2, pid: 99, t_ns: '1' } as never);
    agent.send({ type: 'status', state: 'done' });
    await until(() => got.length === 2);
    expect(got).toEqual(['1:rank_started', '1:status']);
    const rank0 = await join(server, address, 0);
    rank0.send({ type: 'rank_ended', rank: 0, t_ns: '1', exit_code: 0, signal: null, status: 'ok' } as never);
    expect(await rank0.next()).toEqual({ type: 'error', reason: 'only an agent sends rank_ended' });
    agent.send({ type: 'rank_ended', rank: 0, t_ns: '1', exit_code: 0, signal: null, status: 'ok' } as never);
    expect(await agent.next()).toEqual({ type: 'error', reason: "rank 0 is not one of this agent's ranks" });
  });
});

// The rendezvous protocol under fuzzing: thousands of random and mutated messages against the pure
// parser (src/launch/wire.ts) and against a real server on loopback, which must never crash, must close
// only the offending connections, and must keep serving a good client throughout. Seeded: a failure
// prints its seed and case number, and replays.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../src/launch/protocol.js';
import { RendezvousServer } from '../../src/launch/rendezvous.js';
import { LineSplitter, parseClientMessage } from '../../src/launch/wire.js';
import { fuzzLine, overLongLine, prng, VALID_MESSAGES } from './fuzz-cases.js';

const SEED = Number(process.env.MOE_RUN_FUZZ_SEED ?? 20261129);
const TOKEN = 'fuzz-token-0123456789abcdef';
const KNOWN_TYPES = new Set(['hello', 'ping', 'clock', 'status', 'barrier', 'rank_started', 'rank_ended']);

/** Splits `bytes` at random points, as TCP may deliver them. */
function chunks(bytes: Buffer, rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const n = 1 + Math.floor(rand() * Math.min(bytes.length - at, rand() < 0.2 ? 7 : 70_000));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe('the pure parser', () => {
  it('accepts every message of docs/contracts.md (and the agents\' rank_started/rank_ended)', () => {
    for (const m of VALID_MESSAGES) {
      const r = parseClientMessage(JSON.stringify(m));
      expect(r, JSON.stringify(m)).toMatchObject({ ok: true });
    }
  });

  it(`never throws on 10000 mutated lines (seed ${SEED}) and answers each with a message or a short reason`, () => {
    const rand = prng(SEED);
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 10_000; i++) {
      const splitter = new LineSplitter();
      const bytes = Buffer.concat([fuzzLine(rand, TOKEN), Buffer.from('\n')]);
      for (const chunk of chunks(bytes, rand)) {
        let pushed: ReturnType<LineSplitter['push']>;
        try {
          pushed = splitter.push(chunk);
        } catch (err) {
          throw new Error(`seed ${SEED} case ${i}: LineSplitter threw ${(err as Error).message}`);
        }
        if (pushed.error !== undefined) {
          expect(pushed.error.length).toBeLessThan(200);
          refused++;
          break;
        }
        for (const line of pushed.lines) {
          let r: ReturnType<typeof parseClientMessage>;
          try {
            r = parseClientMessage(line);
          } catch (err) {
            throw new Error(`seed ${SEED} case ${i}: parseClientMessage threw ${(err as Error).message} on ${line.slice(0, 200)}`);
          }
          if (r.ok) {
            accepted++;
            expect(KNOWN_TYPES.has(r.message.type), `case ${i}`).toBe(true);
            // a parsed message is plain data: no prototype tricks survive into it
            expect(Object.getPrototypeOf(r.message)).toBe(Object.prototype);
          } else {
            refused++;
            // the reason is logged: it must not echo a huge or binary input back
            expect(r.reason.length, `case ${i}`).toBeLessThan(300);
          }
        }
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // the mutations are not all fatal, and not all harmless: both paths were exercised
    expect(accepted).toBeGreaterThan(250);
    expect(refused).toBeGreaterThan(2500);
  });

  it('cuts off a line at the bound without buffering more, whatever the chunking', () => {
    const rand = prng(SEED + 1);
    for (let i = 0; i < 20; i++) {
      const splitter = new LineSplitter();
      let error: string | undefined;
      let fed = 0;
      for (const chunk of chunks(overLongLine(MAX_LINE_BYTES, rand), rand)) {
        fed += chunk.length;
        error = splitter.push(chunk).error;
        if (error !== undefined) break;
      }
      expect(error).toMatch(/longer than/);
      // it noticed within one chunk of crossing the bound
      expect(fed).toBeLessThan(MAX_LINE_BYTES + 70_001);
    }
  });
});

describe('a real rendezvous server under fuzzing', () => {
  let server: RendezvousServer;
  let port: number;
  const rejected: string[] = [];

  beforeAll(async () => {
    server = new RendezvousServer({ worldSize: 2, barrierTimeoutS: 600, token: TOKEN, helloTimeoutMs: 1000 });
    server.on('rejected', (_remote, reason) => rejected.push(reason));
    ({ port } = await server.listen());
  });
  afterAll(async () => {
    await server?.close();
  });

  /** A well-behaved client: reads lines, answers `request` with the next message of a given type. */
  class GoodClient {
    private readonly socket: Socket;
    private buf = '';
    private readonly waiting: Array<{ type: string; resolve: (m: Record<string, string>) => void }> = [];
    closed = false;
    constructor() {
      this.socket = connect({ host: '127.0.0.1', port });
      this.socket.setEncoding('utf8');
      this.socket.on('data', (d: string) => {
        this.buf += d;
        let nl: number;
        while ((nl = this.buf.indexOf('\n')) >= 0) {
          const msg = JSON.parse(this.buf.slice(0, nl)) as Record<string, string>;
          this.buf = this.buf.slice(nl + 1);
          const i = this.waiting.findIndex((w) => w.type === msg.type);
          if (i >= 0) this.waiting.splice(i, 1)[0].resolve(msg);
        }
      });
      this.socket.on('close', () => { this.closed = true; });
    }
    request(msg: object, replyType: string): Promise<Record<string, string>> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${replyType} for ${JSON.stringify(msg)}`)), 20_000);
        this.waiting.push({ type: replyType, resolve: (m) => { clearTimeout(timer); resolve(m); } });
        this.socket.write(JSON.stringify(msg) + '\n');
      });
    }
    close() { this.socket.destroy(); }
  }

  /** One hostile connection: its lines in random chunks, then end; resolves when the socket closes. */
  function hostile(lines: Buffer[], rand: () => number): Promise<void> {
    return new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.on('error', () => {}); // the server may reset us mid-write: that is its right
      s.on('data', () => {});
      s.on('close', () => resolve());
      s.on('connect', () => {
        for (const chunk of chunks(Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])), rand)) s.write(chunk);
        s.end();
      });
      setTimeout(() => s.destroy(), 10_000).unref();
    });
  }

  it('survives 3000 hostile messages on 600 connections and keeps serving a good client', async () => {
    const rand = prng(SEED + 2);
    const good = new GoodClient();
    expect(await good.request({ type: 'hello', token: TOKEN, role: 'rank', rank: 0, pid: 1, host: 'good' }, 'welcome'))
      .toMatchObject({ world_size: 2 });

    let sent = 0;
    for (let batch = 0; batch < 30; batch++) {
      const conns: Promise<void>[] = [];
      for (let c = 0; c < 20; c++) {
        const n = 2 + Math.floor(rand() * 7);
        const lines = Array.from({ length: n }, () => fuzzLine(rand, TOKEN));
        // half the connections first join properly, so the fuzz also reaches what follows a hello
        if (rand() < 0.5) lines.unshift(Buffer.from(JSON.stringify({ type: 'hello', token: TOKEN, role: 'rank', rank: 1, pid: 9, host: 'fuzz' })));
        if (rand() < 0.02) lines.push(overLongLine(MAX_LINE_BYTES, rand));
        sent += lines.length;
        conns.push(hostile(lines, rand));
      }
      await Promise.all(conns);
      // between every batch, the good client is still served on the reference clock
      const pong = await good.request({ type: 'ping', t0: String(batch) }, 'pong');
      expect(pong.t0).toBe(String(batch));
      expect(BigInt(pong.t2)).toBeGreaterThanOrEqual(BigInt(pong.t1));
    }
    expect(sent).toBeGreaterThan(3000);
    expect(good.closed).toBe(false);
    // the offending connections were closed with reasons (the bad token among them)
    expect(rejected.length).toBeGreaterThan(300);
    expect(rejected).toContain('wrong join token');

    // the run still works: the other rank joins (whatever a fuzz hello claimed has been freed) and the
    // start barrier releases both
    const second = new GoodClient();
    expect(await second.request({ type: 'hello', token: TOKEN, role: 'rank', rank: 1, pid: 2, host: 'good' }, 'welcome'))
      .toMatchObject({ world_size: 2 });
    const releases = [
      good.request({ type: 'barrier', name: 'fuzz-done' }, 'release'),
      second.request({ type: 'barrier', name: 'fuzz-done' }, 'release'),
    ];
    const [a, b] = await Promise.all(releases);
    expect(a.t_ns).toBe(b.t_ns);
    good.close();
    second.close();
  });

  it('a stranger with the wrong token is turned away and the connection closed', async () => {
    const stranger = new GoodClient();
    const reply = await stranger.request({ type: 'hello', token: 'guess', role: 'rank', rank: 1, pid: 3, host: 'x' }, 'error');
    expect(reply.reason).toBe('wrong join token');
    await new Promise((r) => setTimeout(r, 200));
    expect(stranger.closed).toBe(true);
  });
});

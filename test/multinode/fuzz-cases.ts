// Random and mutated rendezvous messages for the fuzz test, from a seeded PRNG so a failure replays.
// The valid messages are the ones docs/contracts.md lists; the mutations are what a broken client, a
// port scanner or a hostile peer would send: cut lines, flipped bits, wrong types, huge numbers, deep
// nesting, over-long lines and bytes that are not UTF-8.

/** mulberry32: small, fast, good enough to spread test cases; deterministic per seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const VALID_MESSAGES: Array<Record<string, unknown>> = [
  { type: 'hello', token: 'TOKEN', role: 'rank', rank: 0, pid: 4242, host: 'n1' },
  { type: 'hello', token: 'TOKEN', role: 'agent', node: 1, ranks: [2, 3], pid: 4343, host: 'n2' },
  { type: 'ping', t0: '1764392011123456789' },
  { type: 'clock', offset_ns: '-1234', rtt_ns: '56789' },
  { type: 'status', state: 'profiling', step: 2, steps: 4, detail: 'step 2 of 4' },
  { type: 'status', state: 'done' },
  { type: 'barrier', name: 'start' },
  { type: 'barrier', name: 'end' },
  { type: 'rank_started', rank: 2, pid: 99, t_ns: '1764392011123456789' },
  { type: 'rank_ended', rank: 2, t_ns: '1764392011123456789', exit_code: 1, signal: null, status: 'failed' },
];

const WEIRD_VALUES: unknown[] = [
  null, true, false, 0, -1, 1.5, NaN, 1e308, -1e308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, -0,
  '', ' ', '\u0000', '\u202e', '💥', 'x'.repeat(5000), '99999999999999999999999999999', '-', '1e9', '0x10',
  [], [1, 2], {}, { a: { b: { c: 1 } } }, ['start'], { toString: 1 }, JSON.parse('{"__proto__":{"polluted":true}}'),
];

const KEYS = ['type', 'token', 'role', 'rank', 'pid', 'host', 'node', 'ranks', 't0', 'offset_ns', 'rtt_ns',
  'state', 'step', 'steps', 'detail', 'name', '__proto__', 'constructor', 'prototype', 'hasOwnProperty'];

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)];
}

function deepNesting(depth: number, arrays: boolean): string {
  return arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** One fuzz case: the bytes of one line, without the newline (some contain newlines or none at all). */
export function fuzzLine(rand: () => number, token: string): Buffer {
  const base = { ...pick(rand, VALID_MESSAGES) };
  if (base.token === 'TOKEN') base.token = rand() < 0.5 ? token : 'wrong-token';
  const json = () => Buffer.from(JSON.stringify(base));
  switch (Math.floor(rand() * 14)) {
    case 0: { // truncated
      const b = json();
      return b.subarray(0, Math.floor(rand() * b.length));
    }
    case 1: { // bit flips
      const b = Buffer.from(json());
      const flips = 1 + Math.floor(rand() * 4);
      for (let i = 0; i < flips; i++) b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
      return b;
    }
    case 2: // a field with a weird value ("__proto__" and friends as real own keys)
      Object.defineProperty(base, pick(rand, KEYS), { value: pick(rand, WEIRD_VALUES), enumerable: true, writable: true, configurable: true });
      return json();
    case 3: { // a field removed
      const keys = Object.keys(base);
      delete base[pick(rand, keys)];
      return json();
    }
    case 4: // huge numbers, written out (JSON.stringify would not)
      return Buffer.from(JSON.stringify(base).replace(/:(\d+)/g, ':1' + '0'.repeat(400)).replace(/"(-?\d+)"/g, '"1' + '9'.repeat(300) + '"'));
    case 5: // deep nesting
      return Buffer.from(deepNesting(1000 + Math.floor(rand() * 20000), rand() < 0.5));
    case 6: // deep nesting inside a valid message
      return Buffer.from(JSON.stringify(base).replace(/}$/, `,"x":${deepNesting(5000, rand() < 0.5)}}`));
    case 7: { // invalid UTF-8 inside strings and outside
      const b = json();
      const at = Math.floor(rand() * b.length);
      return Buffer.concat([b.subarray(0, at), Buffer.from(pick(rand, [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf]])), b.subarray(at)]);
    }
    case 8: // random bytes
      return Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)));
    case 9: // not an object
      return Buffer.from(JSON.stringify(pick(rand, [null, 1, 'hello', [base], true, 1e400])));
    case 10: // duplicate keys, the later one wrong
      return Buffer.from(JSON.stringify(base).replace(/}$/, `,"type":${JSON.stringify(pick(rand, WEIRD_VALUES))}}`));
    case 11: // an unknown type, or a server message sent by a client
      base.type = pick(rand, ['welcome', 'pong', 'release', 'abort', 'error', 'HELLO', 'hello ', 'x', '']);
      return json();
    case 12: // many messages on one line, or several lines at once
      return Buffer.from(rand() < 0.5 ? JSON.stringify(base).repeat(3) : `${JSON.stringify(base)}\n\r\n\n${JSON.stringify(base)}`);
    default: // whitespace and control characters around a valid message
      return Buffer.from(pick(rand, ['\t', ' ', '\r', '\u0000', '\ufeff']) + JSON.stringify(base) + pick(rand, ['\r', ' ', '\u0000', '']));
  }
}

/** An over-long line: more than the protocol's bound, with or without a newline at the end. */
export function overLongLine(maxBytes: number, rand: () => number): Buffer {
  const filler = pick(rand, ['x', '{', '"', ' ', '\u00e9']);
  return Buffer.from(`{"type":"hello","token":"${filler.repeat(maxBytes)}"}`);
}

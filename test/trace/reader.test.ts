// The streaming reader against plain JSON.parse: every real trace in shared/, any chunking of the
// bytes, tricky strings, and truncated files (gzip and plain) that keep what they hold.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTrace, readTraceEvents, scanTrace, type TraceMeta } from '../../src/trace/reader.js';
import { TraceScanner } from '../../src/trace/scan.js';
import { formatNsAsUs, fromNs, parseUsText, toNs } from '../../src/trace/time.js';
import { loadWhole, rawTs, readText, REAL, usToNs } from './tef.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-run-reader-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(path: string) {
  const events = [];
  let meta: TraceMeta | null = null;
  let warnings: string[] = [];
  for await (const e of readTraceEvents(path, (m, w) => ((meta = m), (warnings = w)))) events.push(e);
  return { events, meta: meta! as TraceMeta, warnings };
}

describe('exact times', () => {
  it.each([
    ['1712195495519689.047', 1712195495519689047n],
    ['4458676522690.655', 4458676522690655n],
    ['68.0', 68000n],
    ['0', 0n],
    ['-1.5', -1500n],
    ['"123.456"', 123456n],
    ['1.0005', 1001n], // beyond ns: rounded half away from zero
    ['-1.0005', -1001n],
    ['1.6921085481321545e+15', 1692108548132154500n],
    ['9007199254740993', 9007199254740993000n], // past 2^53 µs: the exact slow path
  ])('%s µs = %s ns', (text, ns) => {
    const t = { us: 0, ns: 0 };
    if (ns > 9007199254740991000n) {
      expect(parseUsText(text, t)).toBe(false); // refused rather than rounded
      return;
    }
    expect(parseUsText(text, t)).toBe(true);
    expect(toNs(t)).toBe(ns);
    expect(t.ns).toBeGreaterThanOrEqual(0);
  });

  it('formats ns as µs exactly, without trailing zeros', () => {
    expect(formatNsAsUs(123456n)).toBe('123.456');
    expect(formatNsAsUs(123450n)).toBe('123.45');
    expect(formatNsAsUs(123000n)).toBe('123');
    expect(formatNsAsUs(5n)).toBe('0.005');
    expect(formatNsAsUs(-500n)).toBe('-0.5');
    expect(formatNsAsUs(-1500n)).toBe('-1.5');
    expect(formatNsAsUs(1712195495519689047n)).toBe('1712195495519689.047');
    for (const ns of [0n, 1n, -1n, 999n, -999n, 1000n, -1001n, 987654321012345678n]) {
      expect(toNs(fromNs(ns))).toBe(ns);
      expect(usToNs(formatNsAsUs(ns))).toBe(ns);
    }
  });
});

describe('readTraceEvents on the real traces', () => {
  it.each(Object.entries(REAL))('%s: same events as JSON.parse, exact ts/dur, metadata', async (_name, path) => {
    const { events: want, doc, text } = loadWhole(path);
    const { events, meta, warnings } = await readAll(path);
    expect(warnings).toEqual([]);
    expect(events.length).toBe(want.length);
    const ts = rawTs(text);
    let k = 0;
    events.forEach((e, i) => {
      expect(e.obj).toEqual(want[i]);
      expect(e.ph).toBe(want[i].ph ?? '');
      if ('ts' in want[i]) expect(e.tsNs).toBe(usToNs(ts[k++]));
      else expect(e.tsNs).toBeNull();
      if (typeof want[i].dur === 'number') expect(Number(e.durNs) / 1000).toBeCloseTo(want[i].dur, 6);
    });
    expect(meta.format).toBe('kineto');
    expect(meta.events).toBe(want.length);
    expect(meta.truncated).toBe(false);
    const r = (doc!.distributedInfo as { rank?: number } | undefined)?.rank;
    expect(meta.rank).toBe(r);
    const base = /"baseTimeNanoseconds"\s*:\s*(\d+)/.exec(text)?.[1];
    expect(meta.baseTimeNs).toBe(base === undefined ? undefined : BigInt(base));
    expect(meta.displayTimeUnit).toBe(doc!.displayTimeUnit);
  });
});

describe('chunk boundaries', () => {
  /** Every event's text when the bytes arrive in pieces of the given sizes (cycled). */
  function scanIn(bytes: Buffer, sizes: number[]): { texts: string[]; keys: string[]; complete: boolean } {
    const texts: string[] = [];
    const sc = new TraceScanner((v) => texts.push(v.text()));
    for (let at = 0, k = 0; at < bytes.length; k++) {
      const n = sizes[k % sizes.length];
      sc.feed(bytes.subarray(at, at + n));
      at += n;
    }
    return { texts, keys: [...sc.meta.keys.keys()], complete: sc.complete };
  }

  it.each([
    ['trace_file_list', REAL.oldCategories],
    ['cpu_only (metadata with a large pg_config before the events, INFO after)', REAL.cpuOnly],
    ['triton', REAL.triton],
  ])('%s: split anywhere, the same events and metadata', (_name, path) => {
    const bytes = Buffer.from(readText(path));
    const whole = scanIn(bytes, [bytes.length]);
    expect(whole.complete).toBe(true);
    for (const sizes of [[1], [2, 3, 5, 7], [13, 1, 64], [4096]]) {
      expect(scanIn(bytes, sizes)).toEqual(whole);
    }
    expect(whole.texts.map((t) => JSON.parse(t))).toEqual(loadWhole(path).events);
  });

  it('strings with escapes, braces, brackets and multi-byte characters, short and long', () => {
    const names = ['a"b', 'x\\', '{[}]', 'ü→∞ 😀', `long ${'k'.repeat(40)}\\"still inside\\\\`, `${'y'.repeat(30)}\\\\`, ''];
    const events = names.map((name, i) => ({ ph: 'X', name, pid: 1, tid: 1, ts: i, dur: 1, args: { note: `${name}}`, nested: [{ s: ']"' }] } }));
    const doc = Buffer.from(JSON.stringify({ traceName: 'x"}', traceEvents: events, distributedInfo: { rank: 3 } }, null, 1));
    for (const sizes of [[doc.length], [1], [3, 7]]) {
      const got = scanIn(doc, sizes);
      expect(got.texts.map((t) => JSON.parse(t))).toEqual(events);
      expect(got.keys).toEqual(['traceName', 'distributedInfo']);
    }
  });
});

describe('values longer than the reader\'s buffers', () => {
  it('a metadata value and an event of several MiB each, between ordinary events, read intact', async () => {
    const big = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i} {"x"} \\ \\"q`).join('|');
    const events = [
      ...Array.from({ length: 3000 }, (_, i) => ({ ph: 'X', name: `op${i}`, pid: 1, tid: 1, ts: i, dur: 1, args: { 'External id': i } })),
      { ph: 'X', name: 'huge', pid: 1, tid: 1, ts: 5000, dur: 1, args: { stack: big(250_000, 'frame') } },
      ...Array.from({ length: 3000 }, (_, i) => ({ ph: 'i', name: `mark${i}`, pid: 1, tid: 2, ts: 6000 + i, s: 't' })),
    ];
    const doc = { INFO: big(300_000, 'line'), traceEvents: events, distributedInfo: { rank: 5 } };
    const path = join(dir, 'big.json');
    await writeFile(path, JSON.stringify(doc));
    expect(readFileSync(path).length).toBeGreaterThan(8 << 20);
    const { events: got, meta, warnings } = await readAll(path);
    expect(warnings).toEqual([]);
    expect(got.map((e) => e.obj)).toEqual(events);
    expect(meta.extra.INFO).toBe(doc.INFO);
    expect(meta.rank).toBe(5);
  });
});

describe('truncated files', () => {
  const full = Buffer.from(readText(REAL.nccl));
  const all = loadWhole(REAL.nccl).events;

  async function checkPrefix(path: string) {
    const { events, meta, warnings } = await readAll(path);
    expect(events.length).toBeGreaterThan(100);
    expect(events.length).toBeLessThan(all.length);
    events.forEach((e, i) => expect(e.obj).toEqual(all[i]));
    expect(meta.truncated).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(path);
    expect(warnings[0]).toMatch(/truncated.*byte \d+.*inside traceEvents/);
    return { events, warnings };
  }

  it('a gzip file cut short keeps every complete event before the cut', async () => {
    const gz = gzipSync(full);
    const path = join(dir, 'cut.json.gz');
    await writeFile(path, gz.subarray(0, Math.floor(gz.length * 0.6)));
    const { warnings } = await checkPrefix(path);
    expect(warnings[0]).toMatch(/gzip: unexpected end of file/);
  });

  it('a plain file cut in the middle of an event', async () => {
    const path = join(dir, 'cut.json');
    const cut = full.indexOf('"External id"', Math.floor(full.length / 2));
    await writeFile(path, full.subarray(0, cut));
    const { events, warnings } = await checkPrefix(path);
    // the byte offsets in the warning are where the data stops and where the last whole event ends
    const [, stop, last] = /stops at byte (\d+).*ending at byte (\d+)/.exec(warnings[0])!.map(Number);
    expect(stop).toBe(cut);
    expect(full.subarray(0, last).toString().trimEnd().endsWith('}')).toBe(true);
    expect(JSON.parse(full.subarray(full.lastIndexOf('\n  {', last), last).toString())).toEqual(all[events.length - 1]);
  });

  it('scanTrace reports the same for the fast path; openTrace fills meta after iteration', async () => {
    const path = join(dir, 'cut2.json');
    await writeFile(path, full.subarray(0, 100_000));
    let n = 0;
    const r = await scanTrace(path, () => n++);
    expect(r.meta.truncated).toBe(true);
    expect(r.meta.events).toBe(n);
    const reader = await openTrace(path);
    expect(reader.meta.gzip).toBe(false);
    let m = 0;
    for await (const _ of reader.events()) m++;
    expect(m).toBe(n);
    expect(reader.warnings[0]).toMatch(/truncated/);
    expect(readFileSync(path).length).toBe(100_000);
  });
});

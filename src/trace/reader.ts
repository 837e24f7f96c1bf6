// Streaming readers for PyTorch profiler traces (plain or gzip), never holding a whole file.
//
// Formats:
//   kineto  torch ≥ 1.8 with Kineto: `{ …metadata…, "traceEvents": [ … ], …metadata… }` — metadata keys may
//           come before or after traceEvents (older Kineto writes distributedInfo and
//           baseTimeNanoseconds after them). `ts` is µs: either epoch µs (integer, or with ns decimals),
//           or, when baseTimeNanoseconds is present (torch ≥ 2.4), µs relative to that base with ns
//           decimals. displayTimeUnit ("ms"/"ns") only tells viewers how to display; ts stay µs.
//   legacy  torch 1.x without Kineto (Debian's torch 1.13): a bare array, `pid: "CPU functions"`,
//           integer `ts` in µs relative to the profiler's start.
//
// Two ways to read:
//   - `readTraceEvents(path)` / `openTrace(path).events()`: an async iterable of TraceEvent, each with
//     its text, its lazily parsed object, and exact integer times (`tsNs`, `durNs` as bigint).
//   - `scanTrace(path, visit)`: the fast path the merge uses; `visit` gets a reused EventView (byte
//     spans, no allocation per event).
//
// Times: `tsNs` is the event's ts converted exactly to ns, in the file's own time base (as written).
// The file's absolute time is `meta.baseTimeNs + tsNs` when the file has a base (baseTimeNanoseconds),
// `tsNs` itself for epoch-µs files, and unknown for legacy files (relative to the profiler's start):
// see `absoluteNs`. Because metadata may follow the events, `meta` is complete only after iteration.
//
// A truncated file (a rank killed while writing) yields every complete event it holds, then adds a
// warning naming the file and the byte offset where it stops; it does not throw.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { EventView, TraceScanner, TraceSyntaxError, type RawMeta } from './scan.js';
import { parseUsBytes, toNs, type UsNs } from './time.js';

export { EventView, Span } from './scan.js';

export type TraceFormat = 'kineto' | 'legacy';

export interface TraceMeta {
  path: string;
  /** null until the first byte of the document is read */
  format: TraceFormat | null;
  gzip: boolean;
  /** Kineto's distributedInfo (backend, rank, world_size, pg_config…) */
  distributedInfo?: Record<string, unknown> & { rank?: number; world_size?: number };
  /** distributedInfo.rank when present */
  rank?: number;
  /** baseTimeNanoseconds (epoch ns) when present: absolute time = baseTimeNs + tsNs */
  baseTimeNs?: bigint;
  displayTimeUnit?: string;
  deviceProperties?: Array<Record<string, unknown>>;
  /** every other top-level key, parsed (schemaVersion, traceName, host_name…) */
  extra: Record<string, unknown>;
  /** the document ended before its end (see warnings) */
  truncated: boolean;
  /** decompressed bytes read */
  bytes: number;
  events: number;
}

/** One trace event as read. */
export interface TraceEvent {
  /** phase: "X", "M", "i", "s", "f", "C"… ("" if absent) */
  ph: string;
  /** ts in ns, exact, in the file's time base; null when the event has no ts */
  tsNs: bigint | null;
  /** dur in ns, exact; null when absent */
  durNs: bigint | null;
  /** the event's JSON text as in the file */
  text: string;
  /** byte offset of the event in the decompressed file */
  offset: number;
  /** the parsed event (parsed on first access) */
  readonly obj: Record<string, unknown>;
}

export interface TraceReader {
  readonly meta: TraceMeta;
  readonly warnings: string[];
  /** Events in file order; can be iterated once. */
  events(): AsyncIterable<TraceEvent>;
}

/** The file is not a trace: its JSON is invalid at `offset`, before any event. */
export class TraceFormatError extends Error {
  constructor(
    readonly path: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`${path}: not a readable trace: invalid JSON at byte ${offset} (${reason})`);
  }
}

export interface ScanResult {
  meta: TraceMeta;
  warnings: string[];
}

const CHUNK = 1 << 20;

/** Whether the file is gzip (by its magic bytes, not its name). */
async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/**
 * Decompressed chunks of a file. A gzip stream that ends early fails with a Z_* error code.
 * A plain file is read into a few buffers used in turn (with one read ahead): fresh memory for every
 * chunk costs more in page faults than the merge spends parsing it. A chunk is only valid until the
 * consumer asks for the one after next; the scanner copies whatever it keeps longer.
 */
function fileChunks(path: string, gzip: boolean): AsyncIterable<Buffer> {
  if (!gzip) return plainChunks(path);
  const gunzip = createGunzip({ chunkSize: CHUNK });
  const file = createReadStream(path, { highWaterMark: CHUNK });
  file.on('error', (e) => gunzip.destroy(e));
  return file.pipe(gunzip);
}

async function* plainChunks(path: string): AsyncGenerator<Buffer> {
  const fh = await open(path, 'r');
  const ring = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let k = 0;
  let next = fh.read(ring[0], 0, CHUNK, null);
  try {
    for (;;) {
      const { bytesRead, buffer } = await next;
      if (bytesRead === 0) return;
      k = (k + 1) % ring.length;
      next = fh.read(ring[k], 0, CHUNK, null);
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await next.catch(() => undefined); // a read still in flight when the consumer stops early
    await fh.close();
  }
}

function isZlibError(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return typeof code === 'string' && code.startsWith('Z_');
}

function newMeta(path: string, gzip: boolean): TraceMeta {
  return { path, format: null, gzip, extra: {}, truncated: false, bytes: 0, events: 0 };
}

/** Interprets the raw top-level keys (exact numbers for baseTimeNanoseconds). */
function fillMeta(meta: TraceMeta, raw: RawMeta, scanner: TraceScanner): void {
  meta.format = raw.format;
  meta.bytes = scanner.bytes;
  meta.events = scanner.eventCount;
  for (const [key, text] of raw.keys) {
    if (key === 'baseTimeNanoseconds') {
      const t = text.replace(/"/g, '').trim();
      if (/^-?\d+$/.test(t)) meta.baseTimeNs = BigInt(t);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
    if (key === 'distributedInfo' && value && typeof value === 'object') {
      meta.distributedInfo = value as TraceMeta['distributedInfo'];
      const r = (value as { rank?: unknown }).rank;
      if (typeof r === 'number' && Number.isInteger(r) && r >= 0) meta.rank = r;
    } else if (key === 'displayTimeUnit' && typeof value === 'string') meta.displayTimeUnit = value;
    else if (key === 'deviceProperties' && Array.isArray(value)) meta.deviceProperties = value as TraceMeta['deviceProperties'];
    else meta.extra[key] = value;
  }
}

/**
 * Feeds the file to the scanner, yielding after each chunk (so a caller can hand on what the chunk
 * produced); at the end completes `meta` and adds the truncation warning if the document was cut.
 */
async function* feedFile(path: string, meta: TraceMeta, warnings: string[], scanner: TraceScanner): AsyncGenerator<void> {
  let stopped: string | null = null;
  let broken: TraceSyntaxError | null = null;
  try {
    for await (const chunk of fileChunks(path, meta.gzip)) {
      scanner.feed(chunk);
      yield;
    }
  } catch (e) {
    if (e instanceof TraceSyntaxError) {
      // not a trace at all, or one whose JSON breaks part way (keep what came before, as for truncation)
      if (scanner.eventCount === 0) throw new TraceFormatError(path, e.offset, e.message);
      broken = e;
    } else if (isZlibError(e)) stopped = (e as Error).message; // gzip cut short: keep what was decompressed
    else throw e;
  }
  fillMeta(meta, scanner.meta, scanner);
  if (broken) {
    meta.truncated = true;
    warnings.push(`${path}: invalid JSON at byte ${broken.offset} (${broken.message}); kept the ${scanner.eventCount} complete events before it`);
  } else if (!scanner.complete) {
    meta.truncated = true;
    const where = scanner.inEvents ? 'inside traceEvents' : 'outside traceEvents';
    const gz = stopped ? ` (gzip: ${stopped})` : '';
    warnings.push(
      `${path}: truncated: the data stops at byte ${scanner.bytes}${gz} ${where}; ` +
        `kept ${scanner.eventCount} complete events, the last ending at byte ${scanner.lastCompleteEnd}`,
    );
  }
}

/**
 * Streams a trace file through `visit` (fast path: a reused EventView, valid only during the call).
 * `afterChunk` runs between decompressed chunks (the merge waits there for its output to drain).
 * Resolves with the complete metadata and warnings (truncation) once the file is read.
 */
export async function scanTrace(
  path: string,
  visit: (v: EventView) => void,
  afterChunk?: () => Promise<void>,
): Promise<ScanResult> {
  const meta = newMeta(path, await isGzip(path));
  const warnings: string[] = [];
  for await (const _ of feedFile(path, meta, warnings, new TraceScanner(visit))) await afterChunk?.();
  return { meta, warnings };
}

const tmp: UsNs = { us: 0, ns: 0 };

function spanNs(v: EventView, s: number, e: number): bigint | null {
  if (s < 0 || !parseUsBytes(v.buf, s, e, tmp)) return null;
  return toNs(tmp);
}

class ParsedEvent implements TraceEvent {
  private parsed: Record<string, unknown> | null = null;
  constructor(
    readonly ph: string,
    readonly tsNs: bigint | null,
    readonly durNs: bigint | null,
    readonly text: string,
    readonly offset: number,
  ) {}
  get obj(): Record<string, unknown> {
    return (this.parsed ??= JSON.parse(this.text) as Record<string, unknown>);
  }
}

/** Opens a trace for iteration. `meta` fills in as the file is read; it is complete after `events()` ends. */
export async function openTrace(path: string): Promise<TraceReader> {
  const meta = newMeta(path, await isGzip(path));
  const warnings: string[] = [];
  let used = false;
  async function* events(): AsyncGenerator<TraceEvent> {
    if (used) throw new Error(`${path}: events() can be iterated once`);
    used = true;
    let batch: TraceEvent[] = [];
    const scanner = new TraceScanner((v) => {
      batch.push(new ParsedEvent(v.ph, spanNs(v, v.tsS, v.tsE), spanNs(v, v.durS, v.durE), v.text(), v.offset));
    });
    for await (const _ of feedFile(path, meta, warnings, scanner)) {
      fillMeta(meta, scanner.meta, scanner);
      const out = batch;
      batch = [];
      yield* out;
    }
    yield* batch;
  }
  return { meta, warnings, events };
}

/**
 * Async iterable of a trace's events. `onMeta` is called once at the end with the complete metadata
 * and the warnings (e.g. truncation).
 */
export async function* readTraceEvents(
  path: string,
  onMeta?: (meta: TraceMeta, warnings: string[]) => void,
): AsyncGenerator<TraceEvent> {
  const reader = await openTrace(path);
  yield* reader.events();
  onMeta?.(reader.meta, reader.warnings);
}

/** Below this, an epoch-less ts is taken as relative (1e12 µs ≈ 11.6 days after 1970). */
const EPOCH_US_MIN = 1_000_000_000_000n;

/**
 * The absolute (epoch ns, the rank's own clock) time of a file-time-base ns value, or null when the file
 * has no absolute time (legacy traces: relative to the profiler's start).
 */
export function absoluteNs(meta: TraceMeta, tsNs: bigint): bigint | null {
  if (meta.baseTimeNs !== undefined) return meta.baseTimeNs + tsNs;
  if (meta.format === 'kineto' && tsNs >= EPOCH_US_MIN * 1000n) return tsNs;
  return null;
}

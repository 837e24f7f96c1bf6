// Streams the unified timeline to disk: `{"traceEvents":[ … ],"displayTimeUnit":"ns","metadata":{…}}`,
// gzip-compressed when the path ends in .gz. Events are appended as bytes (copied straight from the
// input traces by the merge) into a 1 MiB buffer handed to the gzip stream when full; the caller awaits
// `drain()` between input chunks so a slow disk or compressor holds the reader back instead of
// buffering the timeline in memory.
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip, constants, type Gzip, type ZlibOptions } from 'node:zlib';
import { finished } from 'node:stream/promises';

const BUF = 1 << 20;
const IN_FLIGHT = 8 * BUF;

export interface WriterOptions {
  /** zlib level; 1 (fastest) by default: the timeline is written once per run and compresses well anyway */
  gzipLevel?: number;
}

export class TimelineWriter {
  /** the output buffer and the write position in it: see reserve() */
  buf: Buffer = Buffer.allocUnsafe(BUF);
  pos = 0;
  /** buffers the stream has finished with, for reuse */
  private readonly spare: Buffer[] = [];
  private first = true;
  private failed: Error | null = null;
  /** events written */
  count = 0;
  /** uncompressed bytes written */
  bytes = 0;

  private constructor(
    private readonly head: Gzip | WriteStream,
    private readonly file: WriteStream,
  ) {
    const fail = (e: Error) => (this.failed ??= e);
    head.on('error', fail);
    file.on('error', fail);
    this.ascii('{"traceEvents":[\n');
  }

  static open(path: string, opts: WriterOptions = {}): TimelineWriter {
    // Room for a few chunks in flight, so that compressing and writing (on libuv's threads) overlap
    // with reading and rewriting the next chunks (the default 16 KiB would stop the merge at every chunk).
    const file = createWriteStream(path, { highWaterMark: IN_FLIGHT });
    if (!path.endsWith('.gz')) return new TimelineWriter(file, file);
    // (zlib hands its options to its Transform stream; the Transform option is not in ZlibOptions' type)
    const gz = createGzip({ level: opts.gzipLevel ?? constants.Z_BEST_SPEED, chunkSize: BUF, writableHighWaterMark: IN_FLIGHT } as ZlibOptions);
    gz.pipe(file);
    return new TimelineWriter(gz, file);
  }

  /** Starts a new event: writes the separator. Follow with copy()/ascii() of exactly one JSON object. */
  begin(): void {
    this.count++;
    if (this.first) {
      this.first = false;
      return;
    }
    this.reserve(2);
    this.buf[this.pos++] = 0x2c; // ,
    this.buf[this.pos++] = 0x0a; // \n
  }

  /**
   * Makes room for n more bytes at `pos` (the hot path then writes into `buf` directly and advances
   * `pos`). An event larger than the buffer gets a buffer of its own size.
   */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  /** Appends bytes [s, e) of src. */
  copy(src: Uint8Array, s: number, e: number): void {
    this.reserve(e - s);
    this.pos = copyBytes(this.buf, this.pos, src, s, e);
  }

  /** Appends a string (JSON text; any UTF-8). */
  ascii(text: string): void {
    // worst case 3 bytes per UTF-16 unit
    if (this.pos + text.length * 3 > this.buf.length) {
      this.flush();
      if (text.length * 3 > this.buf.length) {
        this.push(Buffer.from(text, 'utf8'));
        return;
      }
    }
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  /** Appends one whole event given as an object (synthesized events: counters, names, instants). */
  event(obj: object): void {
    this.begin();
    this.ascii(JSON.stringify(obj));
  }

  /** Resolves when the output has room again (call between input chunks). */
  async drain(): Promise<void> {
    if (this.failed) throw this.failed;
    // asked of the stream itself: a 'drain' may have come and gone while the caller awaited something else
    if (this.head.writableNeedDrain) await once(this.head, 'drain');
  }

  /** Ends traceEvents, writes the remaining top-level keys, and waits until the file is on disk. */
  async close(tail: Record<string, unknown>): Promise<void> {
    let text = '\n]';
    for (const [k, v] of Object.entries(tail)) text += `,\n${JSON.stringify(k)}:${JSON.stringify(v)}`;
    this.ascii(text + '}\n');
    this.flush();
    this.head.end();
    await finished(this.file);
    if (this.failed) throw this.failed;
  }

  /** Abandons the output (on error), without waiting. */
  destroy(): void {
    this.head.destroy();
    this.file.destroy();
  }

  private flush(): void {
    if (this.pos === 0) return;
    const owner = this.buf;
    const full = owner.subarray(0, this.pos);
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(BUF);
    this.pos = 0;
    // buffers come back once the stream is done with them: fresh memory per chunk costs page faults
    this.push(full, owner.length === BUF ? () => this.spare.push(owner) : undefined);
  }

  private push(chunk: Buffer, done?: () => void): void {
    this.bytes += chunk.length;
    this.head.write(chunk, done);
  }
}

/**
 * Copies src[s, e) to dst at pos, returns the new pos. Short runs are copied in a loop: Buffer.copy's
 * per-call cost (a view object per call) is larger than copying the few dozen bytes between two
 * rewritten fields.
 */
export function copyBytes(dst: Uint8Array, pos: number, src: Uint8Array, s: number, e: number): number {
  const n = e - s;
  if (n < 40) {
    for (let k = 0; k < n; k++) dst[pos + k] = src[s + k];
  } else dst.set(src.subarray(s, e), pos);
  return pos + n;
}

/** Writes the decimal digits of a safe integer at pos; returns the new pos. */
export function writeInt(dst: Uint8Array, pos: number, n: number): number {
  if (n < 0) {
    dst[pos++] = 0x2d;
    n = -n;
  }
  if (n < 1e8) return writeSmall(dst, pos, n | 0, 0);
  // epoch µs have 16 digits: the low 8 as a zero-padded int32, the rest in front (int32 division is fast)
  const high = Math.floor(n / 1e8);
  return writeSmall(dst, writeInt(dst, pos, high), (n - high * 1e8) | 0, 8);
}

/** Digits of 0 ≤ n < 1e8 (an int32), zero-padded to `width`. */
function writeSmall(dst: Uint8Array, pos: number, n: number, width: number): number {
  let len = 1;
  for (let m = n; m >= 10; m = (m / 10) | 0) len++;
  if (len < width) len = width;
  for (let k = pos + len - 1; k >= pos; k--) {
    const q = (n / 10) | 0;
    dst[k] = 0x30 + n - q * 10;
    n = q;
  }
  return pos + len;
}

/** Writes a µs time (floor µs + ns, see time.ts) as exact decimal text, like formatUs; returns the new pos. */
export function writeUs(dst: Uint8Array, pos: number, us: number, ns: number): number {
  if (ns === 0) return writeInt(dst, pos, us);
  if (us < 0) {
    dst[pos++] = 0x2d;
    us = -us - 1;
    ns = 1000 - ns;
  }
  pos = writeInt(dst, pos, us);
  dst[pos++] = 0x2e;
  const d1 = Math.floor(ns / 100);
  const d2 = Math.floor(ns / 10) % 10;
  const d3 = ns % 10;
  dst[pos++] = 0x30 + d1;
  if (d2 !== 0 || d3 !== 0) dst[pos++] = 0x30 + d2;
  if (d3 !== 0) dst[pos++] = 0x30 + d3;
  return pos;
}

// Streams the unified timeline to disk: `{"traceEvents":[ … ],"displayTimeUnit":"ns","metadata":{…}}`,
// gzip-compressed when the path ends in .gz. Events are appended as bytes (copied straight from the
// input traces by the merge) into a 1 MiB buffer handed to the gzip stream when full; the caller awaits
// `drain()` between input chunks so a slow disk or compressor holds the reader back instead of
// buffering the timeline in memory.
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip, constants, type Gzip } from 'node:zlib';
import { finished } from 'node:stream/promises';

const BUF = 1 << 20;

export interface WriterOptions {
  /** zlib level; 1 (fastest) by default: the timeline is written once per run and compresses well anyway */
  gzipLevel?: number;
}

export class TimelineWriter {
  private buf = Buffer.allocUnsafe(BUF);
  private pos = 0;
  private first = true;
  private blocked = false;
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
    const file = createWriteStream(path);
    if (!path.endsWith('.gz')) return new TimelineWriter(file, file);
    const gz = createGzip({ level: opts.gzipLevel ?? constants.Z_BEST_SPEED, chunkSize: BUF });
    gz.pipe(file);
    return new TimelineWriter(gz, file);
  }

  /** Starts a new event: writes the separator. Follow with copy()/ascii() of exactly one JSON object. */
  begin(): void {
    if (this.first) this.first = false;
    else this.ascii(',\n');
    this.count++;
  }

  /** Appends bytes [s, e) of src. */
  copy(src: Buffer, s: number, e: number): void {
    const n = e - s;
    if (this.pos + n > this.buf.length) {
      this.flush();
      if (n > this.buf.length) {
        this.push(Buffer.from(src.subarray(s, e)));
        return;
      }
    }
    src.copy(this.buf, this.pos, s, e);
    this.pos += n;
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
    if (this.blocked) {
      await once(this.head, 'drain');
      this.blocked = false;
    }
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
    const full = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(BUF);
    this.pos = 0;
    this.push(full);
  }

  private push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (!this.head.write(chunk)) this.blocked = true;
  }
}

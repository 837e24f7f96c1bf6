// A samples CSV being appended to while the run goes on. Rows are gathered and written about once a
// second rather than at every tick: each write is a trip through libuv's thread pool and a wake-up of
// the event loop, which at 10 Hz per sampler is a measurable share of the samplers' own CPU time
// (bench/samplers.ts). At most a second of rows is in memory; close() writes what is left.
import { createWriteStream, type WriteStream } from 'node:fs';

const FLUSH_EVERY_MS = 1000;

export class CsvFile {
  private readonly out: WriteStream;
  private pending: string[] = [];
  private lastFlushMs = Date.now();

  constructor(readonly path: string, header: string, log: (line: string) => void) {
    this.out = createWriteStream(path);
    this.out.on('error', (e) => log(`samples: cannot write ${path}: ${e.message}`));
    this.out.write(`${header}\n`);
  }

  /** Rows, each ending in a newline. */
  append(rows: string): void {
    if (!rows) return;
    this.pending.push(rows);
    if (Date.now() - this.lastFlushMs >= FLUSH_EVERY_MS) this.flush();
  }

  private flush(): void {
    if (this.pending.length) this.out.write(this.pending.join(''));
    this.pending = [];
    this.lastFlushMs = Date.now();
  }

  async close(): Promise<void> {
    this.flush();
    await new Promise<void>((resolve) => this.out.end(resolve));
  }
}

// What the user sees while the ranks run (issue 3 item 2). On a terminal: one live line per rank
// (state, step k of n, elapsed), redrawn in place, with the ranks' teed output and the launcher's
// messages printed above it. Elsewhere (CI, scripts, a log file): plain timestamped lines, one per
// change. --quiet: nothing but what the launcher prints as the result.
import type { RankState } from './protocol.js';

export type ProgressMode = 'live' | 'lines' | 'quiet';
export type DisplayState = RankState | 'stopped';

export interface RankProgress {
  state: DisplayState;
  step?: number;
  steps?: number;
  detail?: string;
}

export interface ProgressOptions {
  ranks: number[];
  mode: ProgressMode;
  /** launcher messages and the live block (stderr) */
  err: NodeJS.WritableStream & { columns?: number };
  /** teed rank stdout */
  out: NodeJS.WritableStream;
  /** redraw period of the live block (elapsed times tick) */
  refreshMs?: number;
  now?: () => number;
}

interface Row extends RankProgress {
  since: number;
  until?: number;
  lastLine?: number;
}

// A line per step would flood a log on a long run: steps are logged at most this often per rank.
const STEP_LINE_EVERY_MS = 10_000;

export class Progress {
  private readonly rows = new Map<number, Row>();
  private drawn = 0;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly opts: ProgressOptions) {
    this.now = opts.now ?? Date.now;
    for (const rank of opts.ranks) this.rows.set(rank, { state: 'starting', since: this.now() });
    if (opts.mode === 'live') {
      this.timer = setInterval(() => this.redraw(), opts.refreshMs ?? 500);
      this.timer.unref();
    }
  }

  /** The console mode for these streams: live on a terminal, lines elsewhere, quiet when asked. */
  static modeFor(err: { isTTY?: boolean }, quiet: boolean): ProgressMode {
    if (quiet) return 'quiet';
    return err.isTTY === true && process.env.TERM !== 'dumb' ? 'live' : 'lines';
  }

  update(rank: number, change: RankProgress): void {
    const row = this.rows.get(rank);
    if (row === undefined || this.stopped) return;
    const stateChanged = row.state !== change.state || row.detail !== change.detail;
    // A step count belongs to the state that reported it.
    Object.assign(row, { step: undefined, steps: undefined, detail: undefined }, change);
    // A rank that has ended stops its clock.
    const ended = change.state === 'done' || change.state === 'failed' || change.state === 'stopped';
    row.until = ended ? row.until ?? this.now() : undefined;
    if (this.opts.mode === 'live') return this.redraw();
    if (this.opts.mode !== 'lines') return;
    const t = this.now();
    const stepDue = row.step !== undefined && (row.lastLine === undefined || t - row.lastLine >= STEP_LINE_EVERY_MS || row.step === row.steps);
    if (stateChanged || stepDue) {
      row.lastLine = t;
      this.write(this.opts.err, `${timestamp(t)} rank ${rank} ${describe(row)}`);
    }
  }

  /** A launcher message (a run directory, a failure): timestamped on lines, above the live block. */
  note(line: string): void {
    if (this.opts.mode === 'quiet') return;
    this.write(this.opts.err, this.opts.mode === 'lines' ? `${timestamp(this.now())} ${line}` : line);
  }

  /** Output of a rank (already prefixed), to stdout or stderr like the rank wrote it. */
  rankOutput(stream: 'stdout' | 'stderr', line: string): void {
    if (this.opts.mode === 'quiet') return;
    this.write(stream === 'stdout' ? this.opts.out : this.opts.err, line);
  }

  /** Final draw and no more redraws; what follows is printed below the block. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.opts.mode === 'live') this.redraw();
    this.drawn = 0;
  }

  private write(stream: NodeJS.WritableStream, line: string): void {
    if (this.opts.mode !== 'live' || this.timer === undefined) {
      stream.write(line + '\n');
      return;
    }
    this.clearBlock();
    stream.write(line + '\n');
    this.drawBlock();
  }

  private redraw(): void {
    this.clearBlock();
    this.drawBlock();
  }

  private clearBlock(): void {
    // Up to the block's first line, then erase to the end of the screen.
    if (this.drawn > 0) this.opts.err.write(`\x1b[${this.drawn}A\r\x1b[0J`);
    this.drawn = 0;
  }

  private drawBlock(): void {
    // A wrapped line would break the count of lines to move up over: cut at the terminal's width.
    const width = Math.max(20, (this.opts.err.columns || 100) - 1);
    const t = this.now();
    const lines = [...this.rows].map(([rank, row]) =>
      `rank ${String(rank).padEnd(3)} ${row.state.padEnd(9)} ${elapsed((row.until ?? t) - row.since).padStart(6)}  ${describeTail(row)}`.slice(0, width));
    this.opts.err.write(lines.join('\n') + '\n');
    this.drawn = lines.length;
  }
}

/** "waiting at barrier start", "profiling step 3 of 10", "loading checkpoint". */
export function describe(p: RankProgress): string {
  const tail = describeTail(p);
  return tail === '' ? p.state : `${p.state} ${tail}`;
}

function describeTail(p: RankProgress): string {
  const parts: string[] = [];
  if (p.step !== undefined) parts.push(p.steps !== undefined && p.steps > 0 ? `step ${p.step} of ${p.steps}` : `step ${p.step}`);
  // The bootstrap says "waiting" with detail "barrier start": read as "waiting at barrier start".
  if (p.detail) parts.push(p.state === 'waiting' && p.detail.startsWith('barrier ') ? `at ${p.detail}` : p.detail);
  return parts.join(' ');
}

/** UTC to the second, like 2026-11-29T05:20:01Z. */
export function timestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function elapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}` : `${m}:${String(s % 60).padStart(2, '0')}`;
}

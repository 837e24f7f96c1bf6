// A set of time intervals kept as their union. Traces list events in no promised order, so busy time
// (GPU busy %, CPU op time) needs the union of many overlapping intervals. Intervals are buffered and
// merged whenever the buffer doubles, so memory follows the number of gaps between activities, not
// the number of events or the trace's size.

export class IntervalSet {
  /** flat [start0, end0, start1, end1, …], ns relative to an arbitrary origin */
  private buf: number[] = [];
  /** length of buf right after the last merge */
  private merged = 0;

  add(start: number, end: number): void {
    if (!(end > start)) return; // zero-length events take no time
    this.buf.push(start, end);
    if (this.buf.length > 2 * this.merged + 8192) this.compact();
  }

  /** Adds every interval of another set. */
  addAll(other: IntervalSet): void {
    const o = other.intervals();
    for (let i = 0; i < o.length; i += 2) this.add(o[i], o[i + 1]);
  }

  /** Disjoint intervals in order, flat as [s, e, s, e …]. */
  intervals(): number[] {
    this.compact();
    return this.buf;
  }

  get empty(): boolean {
    return this.buf.length === 0;
  }

  /** Total covered length, clipped to [from, to]. */
  total(from = -Infinity, to = Infinity): number {
    const iv = this.intervals();
    let sum = 0;
    for (let i = 0; i < iv.length; i += 2) {
      const s = Math.max(iv[i], from);
      const e = Math.min(iv[i + 1], to);
      if (e > s) sum += e - s;
    }
    return sum;
  }

  private compact(): void {
    const n = this.buf.length / 2;
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => this.buf[2 * a] - this.buf[2 * b]);
    const out: number[] = [];
    for (const i of order) {
      const s = this.buf[2 * i];
      const e = this.buf[2 * i + 1];
      const last = out.length - 1;
      if (out.length > 0 && s <= out[last]) {
        if (e > out[last]) out[last] = e;
      } else {
        out.push(s, e);
      }
    }
    this.buf = out;
    this.merged = out.length;
  }
}

/** Union of several sets, as a new set. */
export function unionOf(...sets: IntervalSet[]): IntervalSet {
  const u = new IntervalSet();
  for (const s of sets) u.addAll(s);
  return u;
}

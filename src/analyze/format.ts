// Numbers as people read them, shared by the findings, the reports and the sweep table.

/** 41000 → "41,000" */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Percent with a precision that fits its size: 63 → "63%", 4.25 → "4.3%", 0.04 → "0.04%". */
export function percent(p: number): string {
  if (!Number.isFinite(p)) return '–';
  const a = Math.abs(p);
  const digits = a >= 10 || a === 0 ? 0 : a >= 1 ? 1 : 2;
  return `${p.toFixed(digits)}%`;
}

/** Seconds in the unit that reads best: 2.91 → "2.91 s", 0.012 → "12.0 ms", 3.4e-5 → "34 µs". */
export function duration(s: number): string {
  if (!Number.isFinite(s)) return '–';
  const a = Math.abs(s);
  if (a >= 100) return `${s.toFixed(0)} s`;
  if (a >= 1) return `${s.toPrecision(3)} s`;
  if (a >= 1e-3) return `${(s * 1e3).toPrecision(3)} ms`;
  if (a === 0) return '0 s';
  return `${(s * 1e6).toPrecision(3)} µs`;
}

/** 3 significant digits, grouped: 12345.6 → "12,346", 3.14159 → "3.14". */
export function num(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 1000) return count(n);
  return String(Number(n.toPrecision(3)));
}

/** A range of percents "61–65%", or one value when both ends read the same. */
export function percentRange(lo: number, hi: number): string {
  const a = percent(lo);
  const b = percent(hi);
  return a === b ? a : `${a.slice(0, -1)}–${b}`;
}

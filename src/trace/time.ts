// Exact trace time arithmetic. Trace files write microseconds as decimal text ("1712195495519689.047",
// "4458676522690.655", "68.0"); epoch nanoseconds exceed 2^53, so a time is never a double here.
// The hot path keeps a time as two exact integers — whole microseconds (floor) and the nanosecond
// remainder 0..999 — which stays exact for any |µs| < 2^53 (year 2255 in epoch µs) and needs no BigInt.
// BigInt is used at the edges (API values, anchors, offsets).

/** A time or duration as whole µs (floored) + ns remainder: value_ns = us * 1000 + ns, 0 ≤ ns < 1000. */
export interface UsNs {
  us: number;
  ns: number;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Parses the decimal µs number in bytes [s, e) of `buf` (JSON number text, optionally inside quotes)
 * into `out`. Digits beyond the third decimal are rounded half away from zero (traces write at most
 * three). Returns false when the text is not a number.
 */
export function parseUsBytes(buf: Uint8Array, s: number, e: number, out: UsNs): boolean {
  if (buf[s] === 0x22 && e - s >= 2 && buf[e - 1] === 0x22) {
    s++;
    e--;
  }
  let i = s;
  let neg = false;
  if (buf[i] === 0x2d) {
    neg = true;
    i++;
  }
  let us = 0;
  let digits = 0;
  for (; i < e; i++) {
    const d = buf[i] - 0x30;
    if (d < 0 || d > 9) break;
    us = us * 10 + d;
    digits++;
  }
  let ns = 0;
  let round = false;
  if (i < e && buf[i] === 0x2e) {
    i++;
    let k = 0;
    for (; i < e; i++, k++) {
      const d = buf[i] - 0x30;
      if (d < 0 || d > 9) break;
      if (k < 3) ns = ns * 10 + d;
      else if (k === 3) round = d >= 5;
    }
    for (; k < 3; k++) ns *= 10;
  }
  if (i !== e || digits === 0 || us > MAX_SAFE) {
    // exponent form, stray text or a value past 2^53 µs: the exact (slow) path
    return parseUsSlow(Buffer.from(buf.buffer, buf.byteOffset + s, e - s).toString('latin1'), out, neg);
  }
  if (round && ++ns === 1000) {
    ns = 0;
    us++;
  }
  setSigned(out, us, ns, neg);
  return true;
}

/** Same as parseUsBytes for a string (CSV cells, rank.json anchors). */
export function parseUsText(text: string, out: UsNs): boolean {
  const t = text.trim();
  return parseUsBytes(Buffer.from(t, 'latin1'), 0, t.length, out);
}

const DECIMAL = /^(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

function parseUsSlow(text: string, out: UsNs, neg: boolean): boolean {
  const m = DECIMAL.exec(neg ? text.slice(1) : text);
  if (!m || (m[1] === '' && (m[2] === undefined || m[2] === ''))) return false;
  // value = digits · 10^(exp − fractionDigits) µs; in ns: · 10^(exp − fractionDigits + 3)
  const digits = BigInt((m[1] || '0') + (m[2] ?? ''));
  const scale = Number(m[3] ?? 0) - (m[2]?.length ?? 0) + 3;
  let totalNs: bigint;
  if (scale >= 0) totalNs = digits * 10n ** BigInt(scale);
  else {
    const div = 10n ** BigInt(-scale);
    totalNs = digits / div;
    if ((digits % div) * 2n >= div) totalNs += 1n;
  }
  const r = fromNs(neg ? -totalNs : totalNs);
  if (Math.abs(r.us) > MAX_SAFE) return false;
  out.us = r.us;
  out.ns = r.ns;
  return true;
}

function setSigned(out: UsNs, us: number, ns: number, neg: boolean): void {
  if (!neg) {
    out.us = us;
    out.ns = ns;
  } else if (ns === 0) {
    out.us = us === 0 ? 0 : -us;
    out.ns = 0;
  } else {
    out.us = -us - 1;
    out.ns = 1000 - ns;
  }
}

export function toNs(t: UsNs): bigint {
  return BigInt(t.us) * 1000n + BigInt(t.ns);
}

export function fromNs(ns: bigint): UsNs {
  let us = ns / 1000n;
  let rem = ns % 1000n;
  if (rem < 0n) {
    rem += 1000n;
    us -= 1n;
  }
  return { us: Number(us), ns: Number(rem) };
}

/** a + b into out (out may be a). */
export function addUsNs(a: UsNs, b: UsNs, out: UsNs): void {
  let ns = a.ns + b.ns;
  let us = a.us + b.us;
  if (ns >= 1000) {
    ns -= 1000;
    us++;
  }
  out.us = us;
  out.ns = ns;
}

// ".001" … ".999" without trailing zeros, indexed by the ns remainder ("" for 0)
const FRACTION: string[] = Array.from({ length: 1000 }, (_, ns) =>
  ns === 0 ? '' : `.${String(ns).padStart(3, '0').replace(/0+$/, '')}`,
);

/** Writes a time as JSON number text in µs, exact to the ns, without trailing zeros: "123.456", "-0.5", "7". */
export function formatUs(us: number, ns: number): string {
  if (us >= 0 || ns === 0) return `${us}${FRACTION[ns]}`;
  // floor form → sign and magnitude: (-2 µs, 500 ns) is -1.5 µs
  return `-${-us - 1}${FRACTION[1000 - ns]}`;
}

/** An integer ns value as µs text, exact: 123456n → "123.456". */
export function formatNsAsUs(ns: bigint): string {
  const t = fromNs(ns);
  return formatUs(t.us, t.ns);
}

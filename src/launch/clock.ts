// The reference clock of a run (docs/contracts.md "Time"): node 0's launcher wall clock, in epoch
// nanoseconds. Date.now() has only millisecond resolution and can step (NTP), so the wall clock is read
// once at start and the monotonic high-resolution timer is added to it from then on: readings are
// nanosecond-resolution and never go backwards within a run, which barrier releases and ping-pongs need.

export class ReferenceClock {
  private readonly baseWallNs: bigint;
  private readonly baseHr: bigint;

  constructor() {
    this.baseHr = process.hrtime.bigint();
    this.baseWallNs = BigInt(Date.now()) * 1_000_000n;
  }

  /** Epoch ns on the reference clock. */
  nowNs(): bigint {
    return this.baseWallNs + (process.hrtime.bigint() - this.baseHr);
  }

  /** Epoch ns as the decimal string every `*_ns` field carries. */
  now(): string {
    return this.nowNs().toString();
  }
}

/** One ping-pong, every time in epoch ns: t0 sent and t3 received on the client's clock, t1/t2 on the server's. */
export interface PingSample {
  t0: bigint;
  t1: bigint;
  t2: bigint;
  t3: bigint;
}

/**
 * The client's clock offset (server − client, so `server_ns = client_ns + offset_ns`) from the sample with
 * the smallest round trip: the NTP estimate ((t1−t0)+(t2−t3))/2, whose error is bounded by half that
 * round trip's asymmetry, so the tightest exchange is the most trustworthy.
 */
export function clockOffset(samples: readonly PingSample[]): { offsetNs: bigint; rttNs: bigint } {
  if (samples.length === 0) throw new Error('clockOffset: no samples');
  let best: { offsetNs: bigint; rttNs: bigint } | undefined;
  for (const s of samples) {
    const rttNs = (s.t3 - s.t0) - (s.t2 - s.t1);
    if (best === undefined || rttNs < best.rttNs) best = { offsetNs: ((s.t1 - s.t0) + (s.t2 - s.t3)) / 2n, rttNs };
  }
  return best!;
}

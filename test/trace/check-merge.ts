// The whole promise of `mergeTraceFiles`, checked against plain whole-file parsing of its inputs and
// output: each input event exactly once (per rank and phase, names/categories/args kept), no pid or
// flow/correlation id shared between ranks, a strict Trace Event Format check, and every timestamp
// equal to the input's exact decimal plus the shift this file computes on its own.
import { join } from 'node:path';
import { expect } from 'vitest';
import { mergeTraceFiles } from '../../src/trace/merge.js';
import { countBy, fromInput, loadWhole, rawTs, usToNs, validateTimeline, type Ev } from './tef.js';

interface Loaded {
  events: Ev[];
  /** raw ts text per event that has one, in file order */
  ts: string[];
  /** absolute base in ns (baseTimeNanoseconds, or 0 for epoch-µs ts); null: relative time */
  base: bigint | null;
  minNs: bigint;
}

function load(path: string): Loaded {
  const { events, text } = loadWhole(path);
  const ts = rawTs(text);
  expect(ts.length).toBe(events.filter((e) => 'ts' in e).length);
  const baseText = /"baseTimeNanoseconds"\s*:\s*(\d+)/.exec(text)?.[1];
  let minNs: bigint | null = null;
  let c = 0;
  for (const e of events) {
    if (!('ts' in e)) continue;
    const ns = usToNs(ts[c++]);
    if (e.ph !== 'M' && (minNs === null || ns < minNs)) minNs = ns;
  }
  const base = baseText !== undefined ? BigInt(baseText) : minNs! >= 10n ** 15n ? 0n : null;
  return { events, ts, base, minNs: minNs! };
}

/** Per input (in the given order): its expected rank. Checks everything the merge promises. */
export async function checkMerge(dir: string, files: string[], ranks: number[]) {
  const out = join(dir, `t-${Math.random().toString(36).slice(2)}.json.gz`);
  const result = await mergeTraceFiles(files, out);
  const inputs = files.map(load);

  const { doc, events: outEvents, text: outText } = loadWhole(out);
  expect(validateTimeline(doc)).toEqual([]);

  // which rank owns each pid: from the process names the viewer shows
  const pidRank = new Map<number, number>();
  for (const e of outEvents) {
    if (e.ph === 'M' && e.name === 'process_name') {
      const m = /^rank (\d+) · /.exec(e.args.name);
      expect(m, e.args.name).not.toBeNull();
      expect(pidRank.has(e.pid), `pid ${e.pid} named twice`).toBe(false);
      pidRank.set(e.pid, Number(m![1]));
    }
  }
  for (const e of outEvents) expect(pidRank.has(e.pid), `pid ${e.pid} has no process_name`).toBe(true);

  // zero: the earliest event of the inputs with absolute time; relative ones start there
  const absMins = inputs.filter((x) => x.base !== null).map((x) => x.base! + x.minNs);
  const zero = absMins.length ? absMins.reduce((a, b) => (b < a ? b : a)) : 0n;
  expect(result.zeroNs).toBe(zero);

  const outTs = rawTs(outText);
  expect(outTs.length).toBe(outEvents.filter((e) => 'ts' in e).length);
  const outTsOf = new Map<Ev, string>();
  let k = 0;
  for (const e of outEvents) if ('ts' in e) outTsOf.set(e, outTs[k++]);

  const idsByRank = new Map<number, Set<string>>();
  inputs.forEach((input, i) => {
    const rank = ranks[i];
    const mine = outEvents.filter((e) => fromInput(e) && pidRank.get(e.pid) === rank);
    // every event exactly once: counts per phase
    expect(countBy(mine, (e) => e.ph)).toEqual(countBy(input.events, (e) => e.ph ?? ''));
    // names, categories, args survive (metadata args are renamed on purpose)
    const sig = (e: Ev) => `${e.ph}|${e.name}|${e.cat}|${e.ph === 'M' ? '' : JSON.stringify(e.args ?? {}, (key, v) => (/^(External id|external id|correlation)$/.test(key) ? 0 : v))}`;
    expect(countBy(mine, sig)).toEqual(countBy(input.events, sig));

    // exact times: input order is kept for non-metadata events and for metadata events separately
    const shift = input.base !== null ? input.base - zero : -input.minNs;
    for (const meta of [false, true]) {
      const inTs = input.events.map((e, j) => [e, j] as const).filter(([e]) => (e.ph === 'M') === meta && 'ts' in e);
      const tsIndex = new Map<Ev, number>();
      let c = 0;
      for (const e of input.events) if ('ts' in e) tsIndex.set(e, c++);
      const outMine = mine.filter((e) => (e.ph === 'M') === meta && 'ts' in e);
      expect(outMine.length).toBe(inTs.length);
      outMine.forEach((e, j) => {
        const want = usToNs(input.ts[tsIndex.get(inTs[j][0])!]) + shift;
        expect(usToNs(outTsOf.get(e)!), `${e.name} ts`).toBe(want);
      });
    }

    // ids of this rank, as the output has them
    const ids = new Set<string>();
    for (const e of mine) {
      if (e.id !== undefined) ids.add(`flow:${e.id}`);
      if (e.bind_id !== undefined) ids.add(`flow:${e.bind_id}`);
      for (const key of ['External id', 'external id', 'correlation']) if (e.args?.[key] !== undefined) ids.add(`corr:${e.args[key]}`);
    }
    // flows keep their pairing: as many distinct ids as the input had
    const inFlowIds = new Set(input.events.filter((e) => e.id !== undefined).map((e) => String(e.id)));
    expect(new Set(mine.filter((e) => e.id !== undefined).map((e) => String(e.id))).size).toBe(inFlowIds.size);
    idsByRank.set(rank, ids);
  });
  // nothing else came from inputs
  expect(outEvents.filter(fromInput).length).toBe(inputs.reduce((n, x) => n + x.events.length, 0));
  // no id shared between ranks
  const seen = new Map<string, number>();
  for (const [rank, ids] of idsByRank) {
    for (const id of ids) {
      expect(seen.get(id) ?? rank, `id ${id} in ranks ${seen.get(id)} and ${rank}`).toBe(rank);
      seen.set(id, rank);
    }
  }
  return { result, doc: doc as Ev, outEvents };
}


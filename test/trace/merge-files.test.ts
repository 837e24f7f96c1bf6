// `mergeTraceFiles` on every real trace in ../shared/traces/hta, alone and together, checked against
// plain whole-file parsing: each input event appears exactly once (per rank and phase), no pid or
// flow/correlation id is shared between ranks, the output passes a strict Trace Event Format check,
// and every timestamp equals the input's exact decimal plus the shift the test computes itself.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeTraceFiles, rankFromFileName } from '../../src/trace/merge.js';
import { countBy, fromInput, loadWhole, rawTs, REAL, usToNs, validateTimeline, type Ev } from './tef.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moe-run-merge-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

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
async function checkMerge(files: string[], ranks: number[]) {
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

describe('mergeTraceFiles on the real traces', () => {
  it('the sampled rank-0/rank-1 pair of one NCCL job, as a 2-rank timeline', async () => {
    const { result, doc, outEvents } = await checkMerge([REAL.rank0, REAL.rank1], [0, 1]);
    expect(result.ranks.map((r) => [r.rank, r.rank_source, r.alignment?.method])).toEqual([
      [0, 'distributedInfo', 'absolute'],
      [1, 'distributedInfo', 'absolute'],
    ]);
    expect(doc.metadata.ranks).toHaveLength(2);
    // processes are named and sorted by rank
    const names = outEvents.filter((e) => e.name === 'process_name').map((e) => e.args.name);
    expect(names).toContain('rank 0 · GPU 0');
    expect(names).toContain('rank 1 · GPU 1');
    expect(names).toContain('rank 0 · CPU (pid 4037)');
    const sortOf = new Map(outEvents.filter((e) => e.name === 'process_sort_index').map((e) => [e.pid, e.args.sort_index]));
    const nameOf = new Map(outEvents.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args.name as string]));
    const ordered = [...sortOf.entries()].sort((a, b) => a[1] - b[1]).map(([pid]) => Number(/^rank (\d+)/.exec(nameOf.get(pid)!)![1]));
    expect(ordered).toEqual([...ordered].sort((a, b) => a - b));
  });

  it.each([
    ['nccl_data (baseTimeNanoseconds, ns decimals, ac2g/fwdbwd flows)', REAL.nccl, 0],
    ['cpu_only (gloo rank 34)', REAL.cpuOnly, 34],
    ['ns_resolution (displayTimeUnit ns, float epoch µs)', REAL.nsResolution, 0],
    ['trace_file_list (old categories Runtime/Kernel)', REAL.oldCategories, 1],
    ['AMD MI250 (no distributedInfo: argument order)', REAL.amd, 0],
    ['triton (cuda_driver events)', REAL.triton, 0],
    ['rank_unavailable (distributedInfo without rank)', REAL.rankUnavailable, 0],
    ['distributed_info_unavailable', REAL.noDistributedInfo, 0],
  ])('%s', async (_name, file, rank) => {
    await checkMerge([file], [rank]);
  });

  it('different time bases together (baseTimeNanoseconds ones and epoch µs), ranks by every rule', async () => {
    const { result } = await checkMerge([REAL.nccl, REAL.cpuOnly, REAL.amd, REAL.rank0], [0, 34, 2, 1]);
    const src = Object.fromEntries(result.ranks.map((r) => [r.rank, r.rank_source]));
    expect(src[34]).toBe('distributedInfo');
    expect(src[2]).toBe('argument order');
    // sampled_rank-0 also says rank 0, which nccl_data has: renumbered, and said so
    expect(src[1]).toMatch(/renumbered/);
    expect(result.warnings.join('\n')).toMatch(/rank 0 \(distributedInfo\) is already taken; merged as rank 1/);
  });
});

describe('rank from a file name', () => {
  it.each([
    ['rank-3.trace.json.gz', 3],
    ['host_12.rank7.pt.trace.json.gz', 7],
    ['inference_rank_1.json.gz', 1],
    ['rank_not_found.json.gz', null],
    ['cranky2.json', null],
  ])('%s → %s', (name, rank) => {
    expect(rankFromFileName(`/x/${name}`)).toBe(rank);
  });
});

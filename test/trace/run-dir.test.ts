// `mergeRunDir` on a run directory built here the way the launcher lays it out, from real traces (the
// sampled rank-0/1 pair), rank.json anchors, the rendezvous' clock offsets, nvidia-smi rows replayed
// from a real H200 capture, process samples and launcher events. Every expected time is computed
// here with BigInt from the inputs.
import { copyFile, cp, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { RunDir, type Manifest, type RankInfo } from '../../src/run-dir.js';
import { mergeRunDir } from '../../src/trace/merge.js';
import { countBy, fromInput, loadWhole, rawTs, readText, REAL, REPO, usToNs, validateTimeline, type Ev } from './tef.js';

const HOST = 'node-a';
const RELEASE = 1682725898000000000n; // the start barrier's release, reference clock
const OFFSETS = [0n, -1_234_567n]; // reference − local, per rank
const PIDS = [4037, 4045]; // the OS pids in the two real traces

/** Utilisation, memory used, power and SM clock of the loaded H200 row of the real capture. */
function h200Loaded(): Record<string, string> {
  const lines = readFileSync(join(REPO, '..', 'shared', 'nvidia-smi', 'linux-x86_64__nvidia-h200__590.48.01.txt'), 'utf8').split('\n');
  // the capture's last query-gpu section is the one under load
  const at = lines.findLastIndex((l) => l.startsWith('timestamp, driver_version'));
  const header = lines[at].split(', ');
  const row = lines[at + 1].split(', ');
  const get = (name: string) => row[header.findIndex((h) => h.replace(/ \[.*\]$/, '') === name)];
  return {
    'utilization.gpu': get('utilization.gpu'),
    'memory.used': get('memory.used'),
    'power.draw': get('power.draw'),
    'clocks.sm': get('clocks.current.sm'),
  };
}

let dir: string;
let root: string;
let gpu: Record<string, string>;
/** the marker (ProfilerStep#551, CPU side) of rank 0 as its trace writes it */
let markerUs0: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'moe-run-rundir-'));
  const rd = new RunDir(join(root, 'tiny-20260101-000000'));
  dir = rd.root;
  await rd.create();
  gpu = h200Loaded();
  const events: Manifest['events'] = [
    { t_ns: String(RELEASE - 5_000_000_000n), kind: 'spawn', rank: 0 },
    { t_ns: String(RELEASE - 5_000_000_000n), kind: 'spawn', rank: 1 },
    { t_ns: String(RELEASE), kind: 'barrier-release', detail: 'start' },
    { t_ns: String(RELEASE + 4_000_000_123n), kind: 'exit', rank: 1, detail: 'exit 0' },
  ];
  const manifest = {
    schema: 1, name: 'tiny', run_id: 'tiny-20260101-000000', created: '2026-01-01T00:00:00Z', moe_run_version: 'test',
    command: ['moe-run'], config: {} as Manifest['config'], nnodes: 1, world_size: 2,
    ranks: [0, 1].map((rank) => ({ rank, local_rank: rank, node_rank: 0, host: HOST, device: `cuda:${rank}`, argv: [], env: {}, cwd: '/', pid: PIDS[rank], status: 'ok' as const })),
    versions: { node: process.version },
    rendezvous: {
      host: '127.0.0.1', port: 1, releases: { start: String(RELEASE) },
      clock_offsets: { 0: { offset_ns: String(OFFSETS[0]), rtt_ns: '1000' }, 1: { offset_ns: String(OFFSETS[1]), rtt_ns: '1000' } },
    },
    timings: {}, status: 'ok' as const, notes: [], events,
  } satisfies Manifest;
  await rd.writeManifest(manifest);

  const traces = [REAL.rank0, REAL.rank1];
  for (const rank of [0, 1]) {
    await rd.createRankDir(rank);
    await copyFile(traces[rank], join(rd.rankDir(rank), RunDir.traceFileName(HOST, PIDS[rank], rank)));
  }
  // rank 0: full anchors (the marker's local time puts it 250 µs after the release on the reference
  // clock); rank 1: no anchors (a rank whose marker was lost): its own epoch time + clock offset
  const { events: ev0, text: text0 } = loadWhole(REAL.rank0);
  const ts0 = rawTs(text0);
  const i0 = ev0.filter((e) => 'ts' in e).findIndex((e) => e.name === 'ProfilerStep#551' && e.cat === 'user_annotation');
  markerUs0 = ts0[i0];
  const info = (rank: number, anchors: RankInfo['anchors']): RankInfo => ({
    rank, world_size: 2, host: HOST, pid: PIDS[rank], torch_version: '2.1', trace_format: 'kineto', trace_file: null,
    profiled: true, clock_offset_ns: String(OFFSETS[rank]), clock_rtt_ns: '1000', anchors, stages: {}, steps: 2,
  });
  const local0 = RELEASE + 250_000n - OFFSETS[0];
  await writeFile(rd.rankJson(0), JSON.stringify(info(0, { start_marker_local_ns: String(local0), start_marker_trace_us: markerUs0 })));
  await writeFile(rd.rankJson(1), JSON.stringify(info(1, {})));

  const at = (ms: bigint) => String(RELEASE + ms * 1_000_000n);
  const smi = ['recv_ns,host,timestamp,timestamp_ns,index,utilization.gpu,memory.used,power.draw,clocks.sm'];
  for (const ms of [-1000n, 100n, 200n]) {
    for (const index of [0, 1, 2]) {
      smi.push([at(ms), HOST, '2026/07/03 22:11:09.763', at(ms), index, gpu['utilization.gpu'], gpu['memory.used'], gpu['power.draw'], gpu['clocks.sm']].join(','));
    }
  }
  smi.push([at(300n), HOST, '', '', 0, '[N/A]', '[N/A]', '[N/A]', '[N/A]'].join(','));
  await writeFile(rd.nvidiaSmiCsv, smi.join('\n') + '\n');
  const proc = ['recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs'];
  for (const ms of [50n, 150n]) for (const rank of [0, 1]) proc.push([at(ms), rank, PIDS[rank], '97.5', String(1536 * 2 ** 20), '3'].join(','));
  await writeFile(rd.processCsv, proc.join('\n') + '\n');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('mergeRunDir', () => {
  let doc: Ev;
  let out: Ev[];
  let text: string;
  const nameOf = new Map<number, string>();
  const pidNamed = (name: string) => [...nameOf].find(([, n]) => n === name)?.[0];

  beforeAll(async () => {
    const log: string[] = [];
    const r = await mergeRunDir(dir, (l) => log.push(l));
    expect(r.out).toBe(new RunDir(dir).timeline);
    expect(log.join('\n')).toMatch(/rank 1: aligned by absolute/);
    ({ doc, events: out, text } = loadWhole(r.out));
    for (const e of out) if (e.name === 'process_name') nameOf.set(e.pid, e.args.name);
  });

  it('is a valid timeline holding every event of both ranks once', () => {
    expect(validateTimeline(doc)).toEqual([]);
    [REAL.rank0, REAL.rank1].forEach((path, rank) => {
      const input = loadWhole(path).events;
      const mine = out.filter((e) => fromInput(e) && nameOf.get(e.pid)?.startsWith(`rank ${rank} · `));
      expect(countBy(mine, (e) => e.ph)).toEqual(countBy(input, (e) => e.ph));
    });
    // one process per name: the counters went to the trace's own GPU processes, not to new ones
    expect(new Set(nameOf.values()).size).toBe(nameOf.size);
    expect(pidNamed(`rank 0 · CPU (${HOST}:4037)`)).toBeDefined();
    expect(pidNamed('rank 1 · GPU 1')).toBeDefined();
  });

  it('places rank 0 by its anchors and rank 1 by its epoch time plus its clock offset, to the ns', () => {
    const ts = rawTs(text);
    const tsOf = new Map(out.filter((e) => 'ts' in e).map((e, i) => [e, ts[i]]));
    const step = (rank: number) => out.find((e) => e.name === 'ProfilerStep#551' && e.cat === 'user_annotation' && nameOf.get(e.pid)?.startsWith(`rank ${rank} `))!;
    // the marker itself lands where rank.json says: 250 µs after the release
    expect(tsOf.get(step(0))).toBe('250');
    const { events: ev1, text: text1 } = loadWhole(REAL.rank1);
    const raw1 = rawTs(text1)[ev1.filter((e) => 'ts' in e).findIndex((e) => e.name === 'ProfilerStep#551' && e.cat === 'user_annotation')];
    expect(usToNs(tsOf.get(step(1))!)).toBe(usToNs(raw1) + OFFSETS[1] - RELEASE);
    expect(doc.metadata.ranks.map((r: Ev) => r.alignment.method)).toEqual(['anchors', 'absolute']);
    // each rank's span in the metadata: its earliest and latest event start, exact
    for (const [rank, r] of doc.metadata.ranks.entries()) {
      const starts = out.filter((e) => fromInput(e) && e.ph !== 'M' && nameOf.get(e.pid)?.startsWith(`rank ${rank} `)).map((e) => usToNs(tsOf.get(e)!));
      expect(usToNs(r.first_ts_us)).toBe(starts.reduce((a, b) => (b < a ? b : a)));
      expect(usToNs(r.last_ts_us)).toBe(starts.reduce((a, b) => (b > a ? b : a)));
    }
    expect(doc.metadata.zero).toEqual({ epoch_ns: String(RELEASE), source: 'rendezvous release of barrier "start"' });
    expect(doc.metadata.warnings.join('\n')).toMatch(/rank 1: aligned by absolute/);
  });

  it('has the GPU samples as counters on each rank’s GPU, and a process for the GPU no rank used', () => {
    const counters = out.filter((e) => e.ph === 'C');
    const on = (pid: number | undefined, name: string) => counters.filter((e) => e.pid === pid && e.name === name);
    for (const rank of [0, 1]) {
      const pid = pidNamed(`rank ${rank} · GPU ${rank}`);
      expect(on(pid, 'GPU utilization').map((e) => e.args['%'])).toEqual([100, 100, 100]);
      expect(on(pid, 'GPU memory used').map((e) => e.args.MiB)).toEqual([Number(gpu['memory.used'].split(' ')[0]), Number(gpu['memory.used'].split(' ')[0]), Number(gpu['memory.used'].split(' ')[0])]);
      expect(on(pid, 'GPU power')[0].args.W).toBe(627.4);
      expect(on(pid, 'SM clock')[0].args.MHz).toBe(1980);
      expect(on(pid, 'GPU utilization').map((e) => e.ts)).toEqual([-1_000_000, 100_000, 200_000]);
    }
    expect(on(pidNamed(`${HOST} · GPU 2 (no rank)`), 'GPU utilization')).toHaveLength(3);
    // the [N/A] row gives no values (and no counter), rather than zeros
    expect(counters.filter((e) => e.ts === 300_000)).toEqual([]);
  });

  it('has CPU % and RSS on each rank’s CPU process, and the launcher events on "moe-run"', () => {
    for (const rank of [0, 1]) {
      const pid = pidNamed(`rank ${rank} · CPU (${HOST}:${PIDS[rank]})`);
      const c = out.filter((e) => e.ph === 'C' && e.pid === pid);
      expect(c.filter((e) => e.name === 'CPU').map((e) => [e.ts, e.args['%']])).toEqual([[50_000, 97.5], [150_000, 97.5]]);
      expect(c.filter((e) => e.name === 'RSS').map((e) => e.args.MiB)).toEqual([1536, 1536]);
    }
    const moe = pidNamed('moe-run');
    const instants = out.filter((e) => e.ph === 'i' && e.pid === moe);
    expect(instants.map((e) => [e.name, e.s, e.ts])).toEqual([
      ['spawn rank 0', 'p', -5_000_000],
      ['spawn rank 1', 'p', -5_000_000],
      ['barrier-release start', 'g', 0],
      ['exit rank 1', 'p', 4_000_000.123],
    ]);
    // processes sort: moe-run first, then rank 0's, then rank 1's
    const sortOf = new Map(out.filter((e) => e.name === 'process_sort_index').map((e) => [e.pid, e.args.sort_index as number]));
    const byRank = (rank: number) => [...nameOf].filter(([, n]) => n.startsWith(`rank ${rank} `)).map(([pid]) => sortOf.get(pid)!);
    expect(sortOf.get(moe!)).toBeLessThan(Math.min(...byRank(0)));
    expect(Math.max(...byRank(0))).toBeLessThan(Math.min(...byRank(1)));
  });

  it('refuses a folder that is not a run directory, in one line', async () => {
    await expect(mergeRunDir(root)).rejects.toThrow(UserError);
    await expect(mergeRunDir(root)).rejects.toThrow(/not a run directory \(no manifest\.json\)/);
  });
});

describe('mergeRunDir with a broken trace', () => {
  it('keeps the events before the break, says where it is, and merges the other ranks', async () => {
    const copy = join(root, 'broken');
    await cp(dir, copy, { recursive: true });
    const rd = new RunDir(copy);
    const trace = (await rd.traceFile(1))!;
    const text = readText(trace);
    // garbage between two events half way through (the events are one-line `{"ph": …}` objects)
    const at = text.indexOf(', {"ph"', Math.floor(text.length / 2)) + 2;
    await unlink(trace);
    await writeFile(trace.replace(/\.gz$/, ''), `${text.slice(0, at)}garbage, ${text.slice(at)}`);
    const r = await mergeRunDir(copy);
    expect(r.warnings.join('\n')).toMatch(new RegExp(`rank-1/.*: invalid JSON at byte ${at} \\(unexpected 'g' in traceEvents\\); kept the \\d+ complete events before it`));
    const { doc, events } = loadWhole(r.out);
    expect(validateTimeline(doc)).toEqual([]);
    const names = new Map(events.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args.name as string]));
    const kept = events.filter((e) => fromInput(e) && names.get(e.pid)?.startsWith('rank 1 '));
    expect(kept.length).toBe(text.slice(0, at).split('{"ph"').length - 1);
    expect(events.filter((e) => fromInput(e) && names.get(e.pid)?.startsWith('rank 0 ')).length).toBe(loadWhole(REAL.rank0).events.length);
  });
});

// The tiny-cpu demo's timeline, end to end: `moe-run --config configs/tiny-cpu.yaml` (2 real tinymoe
// ranks on the CPU over gloo, torch 1.13 legacy traces) must leave a timeline.json.gz with both ranks,
// their MoE ranges and all-to-alls, the samplers' counters, the launcher's events, and the two
// moe_run/start markers within 1 ms of each other on the reference clock.
// Needs the whole chain: launcher, bootstrap, samplers and the merge at the end of the run.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunDir } from '../../src/run-dir.js';
import { ensureBuilt, repoRoot } from '../cli/cli.js';
import { countBy, fromInput, loadWhole, validateTimeline, type Ev } from './tef.js';

let root: string;
let run: RunDir;
let doc: Ev;
let events: Ev[];
const nameOf = new Map<number, string>();
const ofRank = (rank: number) => events.filter((e) => nameOf.get(e.pid)?.startsWith(`rank ${rank} · `));

beforeAll(async () => {
  ensureBuilt();
  root = await mkdtemp(join(tmpdir(), 'moe-run-e2e-timeline-'));
  run = new RunDir(join(root, 'run'));
  await promisify(execFile)(process.execPath, ['bin/moe-run', '--config', 'configs/tiny-cpu.yaml', '--out', run.root, '--quiet'], { cwd: repoRoot });
  ({ doc, events } = loadWhole(run.timeline));
  for (const e of events) if (e.name === 'process_name') nameOf.set(e.pid, e.args.name);
}, 300_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('the tiny-cpu timeline', () => {
  it('is valid and holds every event of both ranks’ traces once, aligned by their anchors', async () => {
    expect(validateTimeline(doc)).toEqual([]);
    for (const rank of [0, 1]) {
      const input = loadWhole((await run.traceFile(rank))!).events;
      expect(countBy(ofRank(rank).filter(fromInput), (e) => e.ph)).toEqual(countBy(input, (e) => e.ph ?? ''));
    }
    expect(doc.metadata.ranks.map((r: Ev) => r.alignment.method)).toEqual(['anchors', 'anchors']);
  });

  it('shows each rank’s MoE layers and their all-to-alls', () => {
    for (const rank of [0, 1]) {
      const names = countBy(ofRank(rank), (e) => e.name);
      expect(names.get('TransformerDecoderLayer with MoE')).toBeGreaterThan(0);
      expect(names.get('MOELayer')).toBeGreaterThan(0);
      // two all-to-alls per MoE layer call (dispatch and combine)
      const a2a = [...names].filter(([n]) => /all_to_all/.test(n)).reduce((s, [, c]) => s + c, 0);
      expect(a2a).toBeGreaterThanOrEqual(2 * names.get('MOELayer')!);
    }
  });

  it('puts the two moe_run/start markers within 1 ms of each other', () => {
    const markers = events.filter((e) => e.name === 'moe_run/start');
    expect(markers).toHaveLength(2);
    // The bootstrap records both at one reference time; the timeline places them exactly by their
    // anchors, so a gap here is the ranks' own delay in recording them (e.g. a heavily loaded machine).
    const why = `markers at ${markers.map((m) => m.ts).join(' and ')} µs after the start release`;
    expect(Math.abs(markers[0].ts - markers[1].ts), why).toBeLessThan(1000);
  });

  it('has the launcher events, the start release at 0', () => {
    const instants = events.filter((e) => e.ph === 'i' && nameOf.get(e.pid) === 'moe-run');
    const names = instants.map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['spawn rank 0', 'spawn rank 1', 'barrier-release start', 'exit rank 0', 'exit rank 1']));
    expect(instants.find((e) => e.name === 'barrier-release start')!.ts).toBe(0);
  });

  it('has the process counters (CPU %, RSS) on each rank’s process', () => {
    for (const rank of [0, 1]) {
      const counters = ofRank(rank).filter((e) => e.ph === 'C');
      expect(counters.filter((e) => e.name === 'CPU').length, 'samples/process.csv rows for this rank').toBeGreaterThan(0);
      expect(counters.filter((e) => e.name === 'RSS').length).toBeGreaterThan(0);
    }
  });
});

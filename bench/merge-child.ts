// One merge, measured in its own process (so peak RSS is the merge's alone), for bench/merge.ts:
//   node dist/bench/merge-child.js stream|json-parse RUN_DIR gz|plain
// prints {"seconds", "cpuSeconds", "maxRssMB", "inputBytes", "events"} or {"error"} as JSON. With
// plain output (no gzip, written to /dev/null) the process's CPU time is the merge's own work: one
// core's throughput.
//
// json-parse is the baseline a straightforward merge would be: read each rank's file whole, JSON.parse
// it, apply the same remapping (pids, string tids, flow and correlation ids, ts shift) to the objects,
// JSON.stringify each event into the same gzip writer. (Its ts shift is double arithmetic: not exact
// to the ns; it is here for speed and memory only.)
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RunDir } from '../src/run-dir.js';
import { mergeRunDir } from '../src/trace/merge.js';
import { TimelineWriter } from '../src/trace/writer.js';

type Ev = Record<string, unknown> & { args?: Record<string, unknown> };

async function jsonParseMerge(dir: string, out: string): Promise<{ inputBytes: number; events: number }> {
  const rd = new RunDir(dir);
  const manifest = await rd.readManifest();
  const zero = Number(BigInt(manifest.rendezvous!.releases.start) / 1000n);
  const w = TimelineWriter.open(out);
  let inputBytes = 0;
  let nextPid = 2;
  for (const rank of await rd.ranks()) {
    const path = (await rd.traceFile(rank))!;
    const info = (await rd.readRankInfo(rank))!;
    inputBytes += (await stat(path)).size;
    const text = await readFile(path, 'utf8'); // fails past V8's longest string (~512 MiB)
    const doc = JSON.parse(text) as { traceEvents: Ev[] };
    const shiftUs = Number(BigInt(info.anchors.start_marker_local_ns!) / 1000n) - Number(info.anchors.start_marker_trace_us) - zero;
    const pids = new Map<string, number>();
    const tids = new Map<string, number>();
    const idOffset = rank * 2 ** 40;
    for (const e of doc.traceEvents) {
      const pk = JSON.stringify(e.pid);
      if (!pids.has(pk)) pids.set(pk, nextPid++);
      e.pid = pids.get(pk);
      if (typeof e.tid === 'string') {
        if (!tids.has(e.tid)) tids.set(e.tid, 0x80000000 + tids.size);
        e.tid = tids.get(e.tid);
      }
      if (typeof e.ts === 'number') e.ts += shiftUs;
      if (typeof e.id === 'number') e.id += idOffset;
      if (typeof e.bind_id === 'number') e.bind_id += idOffset;
      for (const k of ['External id', 'correlation']) if (typeof e.args?.[k] === 'number') e.args[k] = (e.args[k] as number) + idOffset;
      w.event(e);
      if (w.count % 4096 === 0) await w.drain();
    }
  }
  await w.close({ displayTimeUnit: 'ns' });
  return { inputBytes, events: w.count };
}

async function main(mode: string, dir: string, output: string): Promise<void> {
  // plain output goes nowhere: at 4 GB, the kernel's write-back of the file would be charged to the merge
  const out = output === 'gz' ? join(dir, `timeline.${mode}.json.gz`) : '/dev/null';
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  try {
    const r = mode === 'stream' ? await mergeRunDir(dir, { out }) : await jsonParseMerge(dir, out);
    const cpu = process.cpuUsage(c0);
    if (output === 'gz') await rm(out, { force: true });
    console.log(JSON.stringify({
      seconds: Number(process.hrtime.bigint() - t0) / 1e9,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      maxRssMB: process.resourceUsage().maxRSS / 1024,
      inputBytes: r.inputBytes,
      events: r.events,
    }));
  } catch (e) {
    console.log(JSON.stringify({ error: e instanceof Error ? `${(e as { code?: string }).code ?? e.name}: ${e.message}` : String(e), maxRssMB: process.resourceUsage().maxRSS / 1024 }));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv[2], process.argv[3], process.argv[4]);
}

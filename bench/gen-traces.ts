// Generates large benchmark traces from a real one: the real trace's events (their mix of CPU ops,
// kernels, runtime calls, ac2g/fwdbwd flows, annotations, exactly as Kineto wrote them) repeated
// until the file reaches the wanted size, each repetition shifted in time past the previous one and
// with its flow and correlation ids moved past the previous ones, so the result is a valid trace of
// a longer run. Written as a stream, uncompressed (the merge's parse throughput is what is measured).
//
//   node dist/bench/gen-traces.js SOURCE.json[.gz] OUT.json MB [RANK]
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { scanTrace, Span } from '../src/trace/reader.js';
import { formatUs, parseUsBytes, type UsNs } from '../src/trace/time.js';

/** One source event: its text cut around the values that change per repetition. */
interface Template {
  /** literal pieces; values go between them */
  pieces: string[];
  /** per value: 'ts' (µs·1000 + ns) or 'id' (integer), and its source value */
  values: Array<{ kind: 'ts' | 'id'; v: number }>;
}

export interface GenResult {
  bytes: number;
  events: number;
  repetitions: number;
}

/** Reads the source's events into templates, and its metadata keys. */
async function templates(source: string) {
  const events: Template[] = [];
  const meta: Template[] = [];
  let minNs = Infinity;
  let maxNs = -Infinity;
  let maxId = 0;
  const t: UsNs = { us: 0, ns: 0 };
  const { meta: info } = await scanTrace(source, (v) => {
    const tpl: Template = { pieces: [], values: [] };
    let pos = v.start;
    for (let k = 0; k < v.spanLen; k += 3) {
      const [kind, s, e] = [v.spans[k], v.spans[k + 1], v.spans[k + 2]];
      let value: { kind: 'ts' | 'id'; v: number } | null = null;
      if (kind === Span.Ts && parseUsBytes(v.buf, s, e, t)) {
        // as total ns in a double: exact while < 2^53 ns (relative Kineto times, ~104 days)
        value = { kind: 'ts', v: t.us * 1000 + t.ns };
        if (v.phCode !== 0x4d) {
          minNs = Math.min(minNs, value.v);
          maxNs = Math.max(maxNs, value.v);
        }
      } else if (kind !== Span.Ts && kind !== Span.Dur && kind !== Span.Pid && kind !== Span.Tid) {
        const id = Number(v.buf.toString('latin1', s, e));
        if (Number.isInteger(id)) {
          value = { kind: 'id', v: id };
          maxId = Math.max(maxId, id);
        }
      }
      if (!value) continue;
      tpl.pieces.push(v.buf.toString('utf8', pos, s));
      tpl.values.push(value);
      pos = e;
    }
    tpl.pieces.push(v.buf.toString('utf8', pos, v.end));
    (v.phCode === 0x4d ? meta : events).push(tpl);
  });
  if (!(maxNs < 2 ** 53)) throw new Error(`${source}: absolute ns times exceed 2^53; use a trace with baseTimeNanoseconds`);
  return { events, meta, info, spanNs: maxNs - minNs + 1_000_000, idStride: maxId + 1 };
}

function render(tpl: Template, dtNs: number, dId: number): string {
  let s = tpl.pieces[0];
  for (let i = 0; i < tpl.values.length; i++) {
    const { kind, v } = tpl.values[i];
    if (kind === 'ts') {
      const ns = v + dtNs;
      s += formatUs(Math.floor(ns / 1000), ns % 1000);
    } else s += String(v + dId);
    s += tpl.pieces[i + 1];
  }
  return s;
}

/** Writes OUT: the source's events repeated to about `megabytes` MB, as rank `rank`. */
export async function generateTrace(source: string, out: string, megabytes: number, rank = 0): Promise<GenResult> {
  const { events, meta, info, spanNs, idStride } = await templates(source);
  const target = megabytes * 1e6;
  const file = createWriteStream(out);
  let bytes = 0;
  let count = 0;
  let batch = '';
  const write = async (text: string) => {
    batch += text;
    if (batch.length < 1 << 20) return;
    bytes += Buffer.byteLength(batch);
    const ok = file.write(batch);
    batch = '';
    if (!ok) await once(file, 'drain');
  };
  const head: Record<string, unknown> = { schemaVersion: 1, deviceProperties: info.deviceProperties ?? [] };
  head.distributedInfo = { ...(info.distributedInfo ?? {}), rank, backend: info.distributedInfo?.backend ?? 'nccl' };
  await write(`{\n  ${Object.entries(head).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n  ')},\n  "traceEvents": [\n`);
  let rep = 0;
  let first = true;
  while (bytes + batch.length < target) {
    for (const tpl of events) {
      await write((first ? '  ' : ',\n  ') + render(tpl, rep * spanNs, rep * idStride));
      first = false;
      count++;
    }
    rep++;
  }
  for (const tpl of meta) {
    await write(',\n  ' + render(tpl, 0, 0));
    count++;
  }
  const tail: Record<string, unknown> = { displayTimeUnit: info.displayTimeUnit ?? 'ms' };
  if (info.baseTimeNs !== undefined) tail.baseTimeNanoseconds = '@BASE@';
  await write(`\n  ],\n  ${Object.entries(tail).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n  ').replace('"@BASE@"', String(info.baseTimeNs))}\n}\n`);
  bytes += Buffer.byteLength(batch);
  file.end(batch);
  await finished(file);
  return { bytes, events: count, repetitions: rep };
}

const [source, out, mb, rank] = process.argv.slice(2);
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && source && out && mb) {
  const r = await generateTrace(source, out, Number(mb), Number(rank ?? 0));
  console.log(JSON.stringify(r));
}

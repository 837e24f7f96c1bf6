// Node 0's side of the agents' samples: each agent's samplers write samples/node-N/*.csv on the agent's
// own clock; once they have arrived (or were written in place on a shared file system), node 0 moves
// their rows onto the reference clock and into the run's samples/*.csv, so that every later stage reads
// one file per kind as on a single node (contracts.md "samples/").
//
// Shifting: every column whose name ends in `_ns` (recv_ns, timestamp_ns) gets the node's clock offset
// added (reference = local + offset). Rows stay sorted by the first column, recv_ns: both inputs are
// sorted, so a streaming two-way merge keeps the output sorted without holding either file.
import { once } from 'node:events';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { readdir, rename, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { RunDir } from '../run-dir.js';
import { csvField, splitCsv } from '../sample/csv.js';

/**
 * Merges node `node`'s CSV samples into the run's, shifted by `offsetNs` (reference − node's clock).
 * Returns notes for the manifest (a file whose header differs from node 0's is kept apart, unmerged).
 */
export async function mergeNodeSamples(runDir: RunDir, node: number, offsetNs: bigint): Promise<string[]> {
  const dir = runDir.nodeSamplesDir(node);
  if (!existsSync(dir)) return [];
  const notes: string[] = [];
  for (const name of (await readdir(dir)).filter((f) => f.endsWith('.csv')).sort()) {
    const from = join(dir, name);
    const into = join(runDir.samplesDir, name);
    const merged = await mergeCsv(from, into, offsetNs);
    if (merged) await rm(from);
    else notes.push(`samples/node-${node}/${name} kept apart: its columns differ from samples/${name} (node 0's)`);
  }
  // what is left (gpu-topology.txt, an unmerged CSV) stays in samples/node-N/
  await rmdir(dir).catch(() => {});
  return notes;
}

/** Merges `from` (shifted) into `into` by the first column; false if their headers differ. */
async function mergeCsv(from: string, into: string, offsetNs: bigint): Promise<boolean> {
  const node = lines(from);
  const header = await node.next();
  if (header.done) return true; // empty file: nothing to merge
  const shiftCols = splitCsv(header.value)
    .map((c, i) => (/(^|_)ns$/.test(c) ? i : -1))
    .filter((i) => i >= 0);
  const shift = (line: string) => shiftRow(line, shiftCols, offsetNs);

  const base = existsSync(into) ? lines(into) : null;
  const baseHeader = base ? await base.next() : null;
  if (baseHeader && !baseHeader.done && baseHeader.value !== header.value) {
    await base!.return?.(undefined);
    await node.return?.(undefined);
    return false;
  }
  const tmp = `${into}.merging`;
  const out = createWriteStream(tmp);
  const write = async (line: string) => {
    if (!out.write(line + '\n')) await once(out, 'drain');
  };
  await write(header.value);
  let a = base ? await base.next() : { done: true as const, value: undefined };
  let b = await node.next();
  while (!a.done || !b.done) {
    // take node 0's row while it is not later than the agent's (shifted) row
    if (!b.done && b.value === '') { b = await node.next(); continue; }
    if (!a.done && a.value === '') { a = await base!.next(); continue; }
    const bShifted = b.done ? null : shift(b.value);
    if (!a.done && (bShifted === null || firstKey(a.value) <= firstKey(bShifted))) {
      await write(a.value);
      a = await base!.next();
    } else {
      await write(bShifted!);
      b = await node.next();
    }
  }
  out.end();
  await once(out, 'close');
  await rename(tmp, into);
  return true;
}

function lines(path: string): AsyncIterator<string, undefined> {
  return createInterface({ input: createReadStream(path), crlfDelay: Infinity })[Symbol.asyncIterator]();
}

/** The first field as a number for ordering (recv_ns); rows without one sort first. */
function firstKey(line: string): bigint {
  const comma = line.indexOf(',');
  const first = comma < 0 ? line : line.slice(0, comma);
  return /^\d+$/.test(first) ? BigInt(first) : -1n;
}

/** The row with `offsetNs` added to the columns `cols`, written again as the samplers write CSV. */
function shiftRow(line: string, cols: number[], offsetNs: bigint): string {
  if (cols.length === 0 || offsetNs === 0n) return line;
  const fields = splitCsv(line);
  for (const i of cols) {
    if (i < fields.length && /^\d+$/.test(fields[i])) fields[i] = String(BigInt(fields[i]) + offsetNs);
  }
  return fields.map(csvField).join(',');
}

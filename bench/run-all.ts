// `npm run bench`: runs every benchmark module in bench/ (each exports `run(): Promise<BenchResult[]>`),
// prints one table and writes bench/out/results.json with the machine and date, for bench/RESULTS.md.
// `npm run bench -- merge` runs only the benchmarks whose file name contains "merge".
import { readdir, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpus, totalmem, release } from 'node:os';
import type { BenchResult } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
const NOT_BENCHMARKS = new Set(['run-all.js', 'types.js']);
/** Input generators (gen-*) and the processes a benchmark starts (*-child) are not benchmarks. */
const isHelperModule = (f: string) => f.startsWith('gen-') || f.endsWith('-child.js');

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const files = (await readdir(here))
    .filter((f) => f.endsWith('.js') && !NOT_BENCHMARKS.has(f) && !isHelperModule(f))
    .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
    .sort();
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`;
  const all: Array<BenchResult & { bench: string }> = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { run?: () => Promise<BenchResult[]> };
    if (typeof mod.run !== 'function') continue;
    console.error(`bench: ${f} …`);
    for (const r of await mod.run()) all.push({ bench: f.replace(/\.js$/, ''), ...r });
  }
  const rows = all.map((r) => [
    r.bench, r.name, `${round(r.value)} ${r.unit}`,
    r.baseline === undefined ? '' : round(r.baseline), r.ratio === undefined ? '' : `${round(r.ratio)}×`,
    r.target ?? '', r.note ?? '',
  ].map(String));
  const head = ['bench', 'measure', 'value', 'baseline', 'ratio', 'target', 'note'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(`machine: ${machine}\ndate: ${new Date().toISOString()}\n`);
  console.log(line(head));
  for (const row of rows) console.log(line(row));
  const outDir = join(here, '..', '..', 'bench', 'out');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'results.json'), JSON.stringify({ machine, date: new Date().toISOString(), results: all }, null, 2));
}

function round(n: number): string {
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(3);
}

await main();

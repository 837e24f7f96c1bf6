// `moe-run report DIR…`: one run directory → its summary (analyzed and reported first if it has not
// been); several (a sweep) → one table with a row per run and a column per config value that differs
// between them, so the knob a sweep turned stands next to what it changed.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { loadSummary, type Summary } from '../analyze/index.js';
import { duration, num, percent } from '../analyze/format.js';
import { formatCsv } from '../sample/csv.js';
import { UserError } from '../errors.js';
import { RunDir } from '../run-dir.js';
import { writeReports, writeRunReports } from './index.js';
import { renderMarkdown, markdownTable } from './markdown.js';
import { mainTables } from './tables.js';

export type ReportFormat = 'table' | 'md' | 'csv' | 'json';
export const REPORT_FORMATS: readonly ReportFormat[] = ['table', 'md', 'csv', 'json'];

export interface ReportOptions {
  format?: ReportFormat;
  /** column key or header to sort by; a leading "-" sorts descending */
  sort?: string;
  desc?: boolean;
  /** analyze again even where summary.json exists */
  reanalyze?: boolean;
}

type Value = string | number | null;

interface Column {
  key: string;
  header: string;
  /** how a value reads in table/md output (csv and json keep the raw value) */
  show: (v: Value) => string;
}

const text = (v: Value) => (v === null ? '–' : String(v));
const fixed = (f: (n: number) => string) => (v: Value) => (typeof v === 'number' ? f(v) : text(v));

/** Config → { "a.b.c": value } with arrays and scalars as leaves (JSON text for arrays). */
export function flattenConfig(obj: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (obj !== null && typeof obj === 'object' && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = typeof obj === 'string' ? obj : JSON.stringify(obj);
  }
  return out;
}

/** Keys whose values are not the same in every run (absent counts as a value), in first-seen order. */
function differingKeys(configs: Record<string, string>[]): string[] {
  const keys = [...new Set(configs.flatMap((c) => Object.keys(c)))];
  // the run's name and GPU count have their own columns
  return keys.filter((k) => k !== 'name' && k !== 'gpus' && new Set(configs.map((c) => c[k] ?? '\u0000absent')).size > 1);
}

const meanOf = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const maxOf = (xs: number[]) => (xs.length ? xs.reduce((a, b) => (b > a ? b : a)) : null);
const round = (v: number | null, digits: number) => (v === null ? null : Number(v.toFixed(digits)));

/** One run's figures for the sweep table, raw numbers (rounded to what the data supports). */
function figures(s: Summary): Record<string, Value> {
  const tps = s.ranks.map((r) => r.tokens_per_s).filter((v): v is number => v !== undefined);
  const a2a = s.ranks.flatMap((r) => r.collectives.filter((c) => c.kind === 'all_to_all').map((c) => c.share_pct));
  const busy = s.ranks.flatMap((r) => r.gpus.map((g) => g.busy_pct));
  const traced = s.ranks.filter((r) => r.events > 0);
  return {
    tokens_per_s: tps.length ? round(tps.reduce((a, b) => a + b, 0), 1) : null,
    region_s: round(maxOf(traced.map((r) => r.region_s)), 6),
    all_to_all_pct: round(meanOf(a2a), 2),
    gpu_busy_pct: round(meanOf(busy), 2),
    peak_gpu_mem_mib: maxOf(s.gpu_counters.map((g) => g.mem_peak_mib).filter((v): v is number => v !== undefined)),
    peak_rss_mib: round(maxOf(s.process_counters.map((p) => p.rss_peak_bytes).filter((v): v is number => v !== undefined).map((b) => b / 2 ** 20)), 1),
    status: s.run.status === 'ok' ? 'ok' : `${s.run.status}${s.run.failure ? `: ${s.run.failure}` : ''}`,
  };
}

const FIGURE_COLUMNS: Column[] = [
  { key: 'tokens_per_s', header: 'tokens/s', show: fixed(num) },
  { key: 'region_s', header: 'region', show: fixed(duration) },
  { key: 'all_to_all_pct', header: 'all-to-all share', show: fixed(percent) },
  { key: 'gpu_busy_pct', header: 'GPU busy', show: fixed(percent) },
  { key: 'peak_gpu_mem_mib', header: 'peak GPU MiB', show: fixed(num) },
  { key: 'peak_rss_mib', header: 'peak RSS MiB', show: fixed(num) },
  { key: 'status', header: 'status', show: text },
];

export interface SweepTable {
  columns: Column[];
  rows: Record<string, Value>[];
}

/** Numbers before strings, numbers by value, strings in natural order ("run-2" < "run-10"), empty last. */
function compareValues(a: Value, b: Value): number {
  if (a === null || a === '') return b === null || b === '' ? 0 : 1;
  if (b === null || b === '') return -1;
  const na = typeof a === 'number' ? a : Number(a);
  const nb = typeof b === 'number' ? b : Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return String(a).localeCompare(String(b), 'en', { numeric: true });
}

export function sweepTable(summaries: Summary[], opts: Pick<ReportOptions, 'sort' | 'desc'> = {}): SweepTable {
  const configs = summaries.map((s) => flattenConfig(s.run.config));
  const diff = differingKeys(configs);
  const columns: Column[] = [
    { key: 'run', header: 'run', show: text },
    { key: 'gpus', header: 'GPUs', show: text },
    ...diff.map((k) => ({ key: k, header: k, show: text })),
    ...FIGURE_COLUMNS,
  ];
  const rows = summaries.map((s, i) => {
    const row: Record<string, Value> = { run: basename(s.run.dir) || s.run.run_id, gpus: s.run.world_size };
    for (const k of diff) {
      const v = configs[i][k];
      row[k] = v === undefined ? null : v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
    }
    return { ...row, ...figures(s) };
  });
  if (opts.sort) {
    const desc = opts.desc === true || opts.sort.startsWith('-');
    const name = opts.sort.replace(/^-/, '');
    const col = columns.find((c) => c.key === name) ?? columns.find((c) => c.header.toLowerCase() === name.toLowerCase());
    if (!col) throw new UserError(`--sort ${opts.sort}: no such column; columns: ${columns.map((c) => c.key).join(', ')}`);
    rows.sort((a, b) => (desc ? -1 : 1) * compareValues(a[col.key], b[col.key]));
  }
  return { columns, rows };
}

/** Columns padded to their widest cell, two spaces apart. */
export function textTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

export function renderSweep(t: SweepTable, format: ReportFormat): string {
  const shown = () => t.rows.map((r) => t.columns.map((c) => c.show(r[c.key])));
  switch (format) {
    case 'json':
      return JSON.stringify(t.rows, null, 2) + '\n';
    case 'csv':
      return formatCsv([t.columns.map((c) => c.key), ...t.rows.map((r) => t.columns.map((c) => r[c.key]))]);
    case 'md':
      return markdownTable(t.columns.map((c) => c.header), shown()) + '\n';
    case 'table':
      return textTable(t.columns.map((c) => c.header), shown());
  }
}

/** One run in the terminal: its findings and its ranks. */
function renderRunText(s: Summary): string {
  const ranks = mainTables(s).find((t) => t.id === 'ranks');
  return [
    `${s.run.name} (${s.run.dir}): ${s.run.world_size} rank(s), status ${s.run.status}${s.run.failure ? ` — ${s.run.failure}` : ''}`,
    '',
    ...s.findings.map((f) => `  • ${f}`),
    '',
    ranks ? textTable(ranks.headers, ranks.rows) : '',
    `report: ${new RunDir(s.run.dir).reportHtml}`,
    '',
  ].join('\n');
}

/** A run's summary, with report.md/html written if the run has none yet. */
async function summaryOf(dir: string, reanalyze: boolean): Promise<Summary> {
  const run = new RunDir(dir);
  if (!existsSync(run.root)) throw new UserError(`report: ${dir} does not exist`);
  if (!run.isRunDir()) throw new UserError(`report: ${dir} is not a run directory (no manifest.json in it)`);
  if (reanalyze) return writeRunReports(dir);
  // a run directory may have been moved or unpacked elsewhere since its summary was written
  const loaded = await loadSummary(dir);
  const s: Summary = { ...loaded, run: { ...loaded.run, dir: run.root } };
  if (!existsSync(run.reportHtml) || !existsSync(run.reportMd)) await writeReports(dir, s);
  return s;
}

/**
 * What `moe-run report DIR…` prints. In a sweep, arguments that are not run directories (the
 * archives `pack` leaves next to them when the shell expands runs/*) are skipped with a warning.
 */
export async function reportCommand(dirs: string[], opts: ReportOptions = {}, warn = (line: string) => process.stderr.write(`${line}\n`)): Promise<string> {
  const format = opts.format ?? 'table';
  let runs = dirs;
  if (dirs.length > 1) {
    runs = [];
    for (const d of dirs) {
      if (new RunDir(d).isRunDir()) runs.push(d);
      else warn(`moe-run report: skipping ${d}: not a run directory`);
    }
  }
  if (!runs.length) throw new UserError(`report: none of ${dirs.join(' ')} is a run directory (no manifest.json in them)`);
  const summaries: Summary[] = [];
  for (const d of runs) summaries.push(await summaryOf(d, opts.reanalyze === true)); // one at a time: each may stream traces
  if (summaries.length === 1 && (format === 'table' || format === 'md' || format === 'json')) {
    const s = summaries[0];
    if (format === 'json') return JSON.stringify(s, null, 2) + '\n';
    return format === 'md' ? renderMarkdown(s) : renderRunText(s);
  }
  return renderSweep(sweepTable(summaries, opts), format);
}

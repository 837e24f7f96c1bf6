// The GPUs while ranks run (issue 4): one long-running `nvidia-smi --query-gpu=… -lms N` whose lines
// become rows of samples/nvidia-smi.csv (format: docs/contracts.md "samples/"), plus the one-shot GPU
// inventory and `topo -m`. nvidia-smi is never run through a shell.
//
// What nvidia-smi does that this module absorbs:
// - a field this driver does not know: it prints `Field "x" is not a valid field to query.` and exits 2,
//   naming only the first such field; probeFields drops (or renames) it and asks again;
// - values it cannot give: `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `[Requested functionality has
//   been deprecated]`, plain `N/A`; they become empty cells, so a number column holds numbers or nothing;
// - `timestamp` is the host's local time without a zone, to the millisecond: it is converted to epoch ns
//   with this process's time zone (nvidia-smi runs on this host with the same environment);
// - it may exit in the middle of a run (driver reset, GPU lost): the sampler restarts it with backoff and
//   records the gap as a note.
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import { which } from '../plan/python.js';
import { csvField } from './csv.js';
import { CsvFile } from './csv-file.js';

/** The fields sampled when the config names none (sampling.nvidia_smi_fields). */
export const DEFAULT_FIELDS: readonly string[] = [
  'timestamp', 'index', 'uuid', 'utilization.gpu', 'utilization.memory', 'memory.used', 'memory.total',
  'power.draw', 'clocks.sm', 'clocks.mem', 'temperature.gpu', 'pstate', 'clocks_event_reasons.active',
];

/** The one-shot inventory recorded in the manifest. */
export const INVENTORY_FIELDS: readonly string[] = ['index', 'name', 'uuid', 'memory.total', 'driver_version', 'pci.bus_id'];

/** Drivers before R535 call the clocks_event_reasons.* fields clocks_throttle_reasons.*. */
function formerName(field: string): string | undefined {
  return field.startsWith('clocks_event_reasons.') ? field.replace('clocks_event_reasons.', 'clocks_throttle_reasons.') : undefined;
}

/** The full path of `nvidia-smi` on PATH, or null: its absence is a note, not an error. */
export function findNvidiaSmi(pathEnv = process.env.PATH ?? ''): string | null {
  return which('nvidia-smi', pathEnv) ?? null;
}

/**
 * One value as nvidia-smi printed it → the CSV cell: '' for the bracketed "no value" answers and N/A,
 * the number alone when a unit follows it (`--format=csv` without nounits, as in recorded captures).
 */
export function cleanValue(raw: string, unit?: string): string {
  const v = raw.trim();
  if (v === 'N/A' || /^\[.*\]$/.test(v)) return '';
  if (unit && v.endsWith(` ${unit}`)) return v.slice(0, -unit.length - 1);
  return v;
}

/** A header of `--format=csv`: field names and their units (`memory.used [MiB]` → memory.used, MiB). */
export function parseHeaderLine(line: string): { fields: string[]; units: (string | undefined)[] } {
  const cols = line.replace(/\r$/, '').split(', ').map((h) => /^(.*?)(?: \[(.+)\])?$/.exec(h.trim())!);
  return { fields: cols.map((m) => m[1]), units: cols.map((m) => m[2]) };
}

/**
 * One data line → its cleaned values, or null when it does not have one value per field (an error
 * message nvidia-smi printed in the stream, a cut line). nvidia-smi separates values with ", " and
 * prints none that contain it.
 */
export function parseQueryLine(line: string, units: readonly (string | undefined)[]): string[] | null {
  const raw = line.replace(/\r$/, '').split(', ');
  if (raw.length !== units.length) return null;
  return raw.map((v, i) => cleanValue(v, units[i]));
}

/** `2024/05/01 12:34:56.789` (host local time, no zone) → epoch ns as a decimal string, or null. */
export function timestampToNs(text: string): string | null {
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3})$/.exec(text.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number);
  const epochMs = new Date(y, mo - 1, d, h, mi, s, ms).getTime();
  return Number.isFinite(epochMs) ? (BigInt(epochMs) * 1_000_000n).toString() : null;
}

/** CSV columns after recv_ns,host for these fields: `timestamp` is followed by its `timestamp_ns`. */
export function csvColumns(fields: readonly string[]): string[] {
  return fields.flatMap((f) => (f === 'timestamp' ? ['timestamp', 'timestamp_ns'] : [f]));
}

/** CSV cells for one parsed line, in csvColumns order. */
function csvCells(fields: readonly string[], values: readonly string[]): string[] {
  return fields.flatMap((f, i) => (f === 'timestamp' ? [values[i], timestampToNs(values[i]) ?? ''] : [values[i]]));
}

function idArgs(gpuIds: readonly number[]): string[] {
  return gpuIds.length ? ['-i', gpuIds.join(',')] : [];
}

function queryArgs(fields: readonly string[], gpuIds: readonly number[]): string[] {
  return [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits', ...idArgs(gpuIds)];
}

function firstLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
}

export interface ProbeResult {
  /** the fields this nvidia-smi accepts, in the order asked; null: it cannot be used at all */
  fields: string[] | null;
  notes: string[];
}

/**
 * Asks nvidia-smi once for `wanted`; each field it refuses is replaced by its former name when it has
 * one, else dropped, and the question asked again. Each change is a note.
 */
export async function probeFields(bin: string, wanted: readonly string[], gpuIds: readonly number[]): Promise<ProbeResult> {
  const fields = [...wanted];
  const notes: string[] = [];
  const tried = new Set(fields);
  while (fields.length > 0) {
    const r = await execa(bin, queryArgs(fields, gpuIds), { reject: false, stdin: 'ignore', timeout: 60_000 });
    if (r.exitCode === 0) return { fields, notes };
    const said = `${r.stdout}\n${r.stderr}`;
    const refused = /Field "?([^"\s]+)"? is not a valid field/.exec(said)?.[1];
    const at = refused === undefined ? -1 : fields.indexOf(refused);
    if (at < 0) {
      notes.push(`nvidia-smi --query-gpu failed (${r.code ?? `exit code ${r.exitCode}`}): ${firstLine(said) || r.shortMessage}; no GPU samples`);
      return { fields: null, notes };
    }
    const former = formerName(refused!);
    if (former !== undefined && !tried.has(former)) {
      fields[at] = former;
      tried.add(former);
      notes.push(`nvidia-smi does not know the field ${refused}; sampling its former name ${former} instead`);
    } else {
      fields.splice(at, 1);
      notes.push(`nvidia-smi refused the field ${refused} ("is not a valid field to query"); sampling without it`);
    }
  }
  notes.push('nvidia-smi refused every field asked for; no GPU samples');
  return { fields: null, notes };
}

/** `nvidia-smi --query-gpu=index,name,uuid,…` as one record per GPU, or a note why there is none. */
export async function gpuInventory(bin: string): Promise<{ gpus: Record<string, string>[] } | { note: string }> {
  const r = await execa(bin, queryArgs(INVENTORY_FIELDS, []), { reject: false, stdin: 'ignore', timeout: 60_000 });
  if (r.exitCode !== 0) return { note: `nvidia-smi GPU inventory failed: ${firstLine(`${r.stdout}\n${r.stderr}`) || r.shortMessage}` };
  const units = INVENTORY_FIELDS.map(() => undefined);
  const gpus = r.stdout.split('\n').filter((l) => l.trim() !== '').flatMap((line) => {
    const values = parseQueryLine(line, units);
    return values ? [Object.fromEntries(INVENTORY_FIELDS.map((f, i) => [f, values[i]]))] : [];
  });
  return { gpus };
}

/** `nvidia-smi topo -m` saved as it is printed; a note when it fails. */
export async function saveTopology(bin: string, path: string): Promise<string | null> {
  const r = await execa(bin, ['topo', '-m'], { reject: false, stdin: 'ignore', timeout: 60_000 });
  if (r.exitCode !== 0) return `nvidia-smi topo -m failed: ${firstLine(`${r.stdout}\n${r.stderr}`) || r.shortMessage}`;
  await writeFile(path, r.stdout.endsWith('\n') ? r.stdout : `${r.stdout}\n`);
  return null;
}

export interface NvidiaSmiSamplerOptions {
  bin: string;
  /** fields as probeFields accepted them */
  fields: string[];
  /** GPUs to sample (`-i`); empty: every GPU nvidia-smi sees */
  gpuIds: number[];
  intervalMs: number;
  csvPath: string;
  /** the reference clock, epoch ns */
  now: () => bigint;
  log: (line: string) => void;
  note: (line: string) => void;
}

/** The first restart waits this long; each quick exit doubles it, up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** A run of nvidia-smi that lasted this long resets the backoff: it was not crash-looping. */
const HEALTHY_RUN_MS = 30_000;

/**
 * The long-running `nvidia-smi … -lms N`: every line it prints becomes a CSV row stamped with the
 * receive time. If it exits before stop(), it is started again after a backoff, and the time without
 * samples becomes a note ("no GPU samples from A to B ns").
 */
export class NvidiaSmiSampler {
  private readonly out: CsvFile;
  private readonly host = hostname();
  private readonly units: undefined[];
  private child: ResultPromise | null = null;
  private exited: Promise<void> = Promise.resolve();
  private restartTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private backoffMs = FIRST_BACKOFF_MS;
  private lastRowNs: bigint | null = null;
  /** since when there are no samples, and why; set when nvidia-smi exits, cleared by the next row */
  private gap: { fromNs: bigint; why: string } | null = null;
  private badLines = 0;
  private markStarted!: () => void;
  /** Resolves at the first row, or when the first nvidia-smi exits without one: sampling is under way. */
  readonly started = new Promise<void>((resolve) => {
    this.markStarted = resolve;
  });

  constructor(private readonly opts: NvidiaSmiSamplerOptions) {
    this.units = opts.fields.map(() => undefined);
    this.out = new CsvFile(opts.csvPath, ['recv_ns', 'host', ...csvColumns(opts.fields)].map(csvField).join(','), opts.log);
  }

  start(): void {
    const { bin, fields, gpuIds, intervalMs } = this.opts;
    const args = [...queryArgs(fields, gpuIds), '-lms', String(intervalMs)];
    this.opts.log(`samples: ${bin} ${args.join(' ')}`);
    const startedMs = Date.now();
    // buffer: false — the output of a long run must not pile up in memory; lines are consumed as they come
    const child = execa(bin, args, { reject: false, buffer: false, stdin: 'ignore', cleanup: true });
    this.child = child;
    const stderrTail: string[] = [];
    // one chunk holds the lines of one interval: they share a receive time and go out in one write
    let partial = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const recvNs = this.opts.now();
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      this.out.append(lines.map((line) => this.row(line, recvNs)).join(''));
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderrTail.push(line);
      if (stderrTail.length > 3) stderrTail.shift();
    });
    this.exited = child.then((r) => {
      this.child = null;
      this.markStarted();
      if (this.stopping) return;
      const how = r.code ?? (r.signal ? `signal ${r.signal}` : `exit code ${r.exitCode}`);
      const why = `nvidia-smi exited (${how}${stderrTail.length ? `: ${stderrTail.join(' / ')}` : ''})`;
      this.gap ??= { fromNs: this.lastRowNs ?? this.opts.now(), why };
      if (Date.now() - startedMs >= HEALTHY_RUN_MS) this.backoffMs = FIRST_BACKOFF_MS;
      this.opts.log(`samples: ${why}; restarting in ${this.backoffMs} ms`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.start();
      }, this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    });
  }

  /** One line of nvidia-smi's output → its CSV row ('' for a blank line or one that is not a sample). */
  private row(line: string, recvNs: bigint): string {
    if (line.trim() === '') return '';
    const values = parseQueryLine(line, this.units);
    if (!values) {
      if (this.badLines++ === 0) this.opts.log(`samples: nvidia-smi printed a line that is not a sample: ${line.slice(0, 200)}`);
      return '';
    }
    if (this.gap) {
      this.opts.note(gapNote(this.gap.why, this.gap.fromNs, recvNs));
      this.gap = null;
    }
    this.lastRowNs = recvNs;
    this.markStarted();
    return [String(recvNs), this.host, ...csvCells(this.opts.fields, values)].map(csvField).join(',') + '\n';
  }

  /** Ends nvidia-smi and the CSV; a gap still open runs to now. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.child?.kill();
    await this.exited;
    if (this.gap) this.opts.note(gapNote(this.gap.why, this.gap.fromNs, this.opts.now(), true));
    if (this.badLines > 0) this.opts.note(`nvidia-smi printed ${this.badLines} line(s) that were not samples (first one in launcher.log)`);
    await this.out.close();
  }
}

function gapNote(why: string, fromNs: bigint, toNs: bigint, atEnd = false): string {
  const seconds = (Number(toNs - fromNs) / 1e9).toFixed(1);
  return atEnd
    ? `${why}; no GPU samples from ${fromNs} ns to the end of sampling at ${toNs} ns (${seconds} s)`
    : `${why}; restarted; no GPU samples from ${fromNs} to ${toNs} ns (${seconds} s)`;
}

// Each rank's process tree while it runs (issue 4): the rank's process and all its descendants (data
// loader workers, compilers, anything it spawns), summed, every interval, to samples/process.csv as
// `recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs` (docs/contracts.md "samples/").
//
// Read straight from /proc rather than with pidusage: bench/samplers.ts measured pidusage as the bulk of
// the samplers' own cost (several asynchronous reads per process per tick, a descriptor kept open per
// pid), above the 1%-of-one-core target; one synchronous read of /proc/<pid>/stat per process per tick
// gives everything needed (utime, stime, rss, start time).
//
// Cost and growth over a long run:
// - The tree is walked through /proc/<pid>/task/<tid>/children (only the tree's own entries, not every
//   process of the host), and only about once a second: a torch process has one task per core, so
//   walking it at every 100 ms tick would cost more than the sampling itself. A process born between
//   two walks is counted from the next walk on; one that ended is left out at once (its stat is gone).
// - No descriptor stays open (each stat file is opened, read and closed within the tick), and the only
//   state is the last reading of each live pid, rebuilt at every tick: exited pids are forgotten at once.
import { execa } from 'execa';
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import { uptime } from 'node:os';
import { CsvFile } from './csv-file.js';

/** Kernels built without CONFIG_PROC_CHILDREN have no children files: then /proc is scanned for ppids. */
const HAS_CHILDREN_FILES = existsSync(`/proc/self/task/${process.pid}/children`);

// /proc is read synchronously: its files live in memory and never wait on a disk, and a synchronous read
// costs one system call where an asynchronous one also costs a thread-pool round trip and a wake-up.
function readProc(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return ''; // the process is gone
  }
}

function childrenOf(pid: number, ppids: Map<number, number[]> | null): number[] {
  if (ppids) return ppids.get(pid) ?? [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // gone
  }
  return tasks.flatMap((t) => readProc(`/proc/${pid}/task/${t}/children`).split(' ').filter(Boolean).map(Number));
}

/** pid → its children, from every /proc/<pid>/stat (the fallback for kernels without children files). */
function scanPpids(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const p of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    const stat = readProc(`/proc/${p}/stat`);
    // the command name may hold spaces and parentheses: fields after the last ')' are "state ppid …"
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (Number.isInteger(ppid)) map.set(ppid, [...(map.get(ppid) ?? []), Number(p)]);
  }
  return map;
}

/** `root` and all its descendants (root first); empty when root is gone. */
export function processTree(root: number): number[] {
  if (!existsSync(`/proc/${root}`)) return [];
  const ppids = HAS_CHILDREN_FILES ? null : scanPpids();
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const c of childrenOf(tree[i], ppids)) if (!tree.includes(c)) tree.push(c);
  }
  return tree;
}

/** The host's clock tick (utime, stime and starttime are counted in it) and page size (rss is in pages). */
export interface ProcUnits {
  clockTicks: number;
  pageSize: number;
}

let units: Promise<ProcUnits> | null = null;

/** getconf, once per process; the Linux defaults where it cannot answer. */
export function procUnits(): Promise<ProcUnits> {
  const ask = async (name: string, fallback: number) => {
    const r = await execa('getconf', [name], { reject: false });
    const n = Number(r.stdout);
    return r.exitCode === 0 && Number.isInteger(n) && n > 0 ? n : fallback;
  };
  units ??= Promise.all([ask('CLK_TCK', 100), ask('PAGESIZE', 4096)]).then(([clockTicks, pageSize]) => ({ clockTicks, pageSize }));
  return units;
}

/** One reading of one process: CPU time used and start time in clock ticks, resident pages. */
export interface ProcStat {
  cpuTicks: number;
  startTicks: number;
  rssPages: number;
}

// one buffer for every stat read: a stat line is a few hundred bytes (the command name at most 64)
const statBuf = Buffer.alloc(4096);

/** /proc/<pid>/stat read with one open, one read and one close; null when the process is gone. */
export function readStat(pid: number): ProcStat | null {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return null;
  }
  let text: string;
  try {
    text = statBuf.toString('latin1', 0, readSync(fd, statBuf, 0, statBuf.length, 0));
  } catch {
    return null; // exited between the open and the read
  } finally {
    closeSync(fd);
  }
  // the command name may hold spaces and parentheses: the fields after the last ')' start at field 3
  // (state); utime, stime are fields 14, 15, starttime 22, rss 24 (proc(5))
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const stat = { cpuTicks: Number(f[11]) + Number(f[12]), startTicks: Number(f[19]), rssPages: Number(f[21]) };
  return Number.isFinite(stat.cpuTicks) && Number.isFinite(stat.rssPages) && Number.isFinite(stat.startTicks) ? stat : null;
}

/** A pid's reading kept until the next tick. */
interface Reading {
  cpuTicks: number;
  startTicks: number;
  /** when, in seconds on the monotonic clock */
  at: number;
}

/** One rank's tree summed. */
interface TreeUsage {
  cpuPercent: number;
  rssBytes: number;
  nprocs: number;
}

export interface ProcessSamplerOptions {
  /** rank → pid of its process, read at every tick (a rank may not have started yet, or have ended) */
  pids: () => Map<number, number>;
  intervalMs: number;
  csvPath: string;
  /** the reference clock, epoch ns */
  now: () => bigint;
  log: (line: string) => void;
  /** how often each tree is walked again (and whenever a rank's pid changes); default 1000 ms */
  walkEveryMs?: number;
}

/** Samples every rank's tree each interval until stop(). */
export class ProcessSampler {
  /** ticks done so far (tests wait on it instead of on time) */
  ticks = 0;
  private readonly out: CsvFile;
  private readonly trees = new Map<number, { root: number; pids: number[]; walkedMs: number }>();
  /** pid → its reading at the previous tick and when: the CPU delta's start */
  private last = new Map<number, Reading>();
  private timer: NodeJS.Timeout | null = null;
  private loop: Promise<void> = Promise.resolve();
  private stopping = false;
  private wake: (() => void) | null = null;
  private failures = 0;

  constructor(private readonly opts: ProcessSamplerOptions) {
    this.out = new CsvFile(opts.csvPath, 'recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs', opts.log);
  }

  /** Resolves once sampling runs (getconf has answered: a one-off cost, kept out of the ticks). */
  async start(): Promise<void> {
    const units = await procUnits();
    if (!this.stopping) this.loop = this.run(units);
  }

  /** Ticks on a fixed grid; a tick that overruns its slot makes the next one start at once, never overlap. */
  private async run(units: ProcUnits): Promise<void> {
    let next = Date.now();
    while (!this.stopping) {
      try {
        this.tick(units);
      } catch (e) {
        if (this.failures++ === 0) this.opts.log(`samples: process sampling failed: ${(e as Error).message}`);
      }
      this.ticks++;
      next = Math.max(next + this.opts.intervalMs, Date.now());
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, next - Date.now());
      });
    }
  }

  private tick(units: ProcUnits): void {
    const ranks = this.opts.pids();
    const nowMs = Date.now();
    for (const rank of this.trees.keys()) if (!ranks.has(rank)) this.trees.delete(rank);
    for (const [rank, root] of ranks) {
      const known = this.trees.get(rank);
      if (known && known.root === root && nowMs - known.walkedMs < (this.opts.walkEveryMs ?? 1000)) continue;
      this.trees.set(rank, { root, pids: processTree(root), walkedMs: nowMs });
    }
    // the monotonic clock costs no system call; the time since boot (the clock of starttime) costs a
    // read of /proc/uptime, so it is read only for pids seen for the first time
    const at = Number(process.hrtime.bigint()) / 1e9;
    let sinceBoot: number | undefined;
    const recvNs = this.opts.now();
    const current = new Map<number, Reading>();
    const lines: string[] = [];
    for (const [rank, tree] of [...this.trees].sort((a, b) => a[0] - b[0])) {
      const u: TreeUsage = { cpuPercent: 0, rssBytes: 0, nprocs: 0 };
      for (const pid of tree.pids) {
        const stat = readStat(pid);
        if (!stat) continue; // gone
        // CPU over the interval since the previous reading; a pid read for the first time (or reused by
        // a new process, which has another start time): since it started
        const known = this.last.get(pid);
        const [cpuTicks, seconds] = known?.startTicks === stat.startTicks
          ? [stat.cpuTicks - known.cpuTicks, at - known.at]
          : [stat.cpuTicks, (sinceBoot ??= uptime()) - stat.startTicks / units.clockTicks];
        if (seconds > 0) u.cpuPercent += (100 * cpuTicks) / units.clockTicks / seconds;
        u.rssBytes += stat.rssPages * units.pageSize;
        u.nprocs++;
        current.set(pid, { cpuTicks: stat.cpuTicks, startTicks: stat.startTicks, at });
      }
      if (u.nprocs === 0) continue; // the rank's process is gone
      lines.push(`${recvNs},${rank},${tree.root},${u.cpuPercent.toFixed(1)},${u.rssBytes},${u.nprocs}\n`);
    }
    this.last = current;
    if (lines.length) this.out.append(lines.join(''));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    await this.out.close();
  }
}

// Each rank's process tree while it runs (issue 4): the rank's process and all its descendants (data
// loader workers, compilers, anything it spawns), summed, every interval, to samples/process.csv as
// `recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs` (docs/contracts.md "samples/").
//
// Cost and growth over a long run:
// - The tree is walked through /proc/<pid>/task/<tid>/children (only the tree's own entries, not every
//   process of the host), and only about once a second: a torch process has one task per core, so
//   walking it at every 100 ms tick would cost more than the sampling itself. A process born between
//   two walks is counted from the next walk on; one that ended is left out at once (pidusage skips it).
// - CPU % and RSS come from pidusage, which keeps, per pid, the last reading (for the CPU delta) and an
//   open descriptor on /proc/<pid>/stat. It closes them only when an entry expires (maxage without
//   being read); pidusage.clear() forgets entries without closing their descriptors, so it is not used.
//   A short maxage (a few intervals) makes the entries of exited processes expire, and their
//   descriptors close, soon after they are gone: history and open files stay bounded by the live tree.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import pidusage from 'pidusage';
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
  private readonly maxageMs: number;
  private timer: NodeJS.Timeout | null = null;
  private loop: Promise<void> = Promise.resolve();
  private stopping = false;
  private wake: (() => void) | null = null;
  private failures = 0;

  constructor(private readonly opts: ProcessSamplerOptions) {
    this.maxageMs = Math.max(5 * opts.intervalMs, 500);
    this.out = new CsvFile(opts.csvPath, 'recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs', opts.log);
  }

  start(): void {
    this.loop = this.run();
  }

  /** Ticks on a fixed grid; a tick that overruns its slot makes the next one start at once, never overlap. */
  private async run(): Promise<void> {
    let next = Date.now();
    while (!this.stopping) {
      await this.tick().catch((e: Error) => {
        if (this.failures++ === 0) this.opts.log(`samples: process sampling failed: ${e.message}`);
      });
      this.ticks++;
      next = Math.max(next + this.opts.intervalMs, Date.now());
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, next - Date.now());
      });
    }
  }

  private async tick(): Promise<void> {
    const ranks = this.opts.pids();
    const nowMs = Date.now();
    for (const rank of this.trees.keys()) if (!ranks.has(rank)) this.trees.delete(rank);
    for (const [rank, root] of ranks) {
      const known = this.trees.get(rank);
      if (known && known.root === root && nowMs - known.walkedMs < (this.opts.walkEveryMs ?? 1000)) continue;
      this.trees.set(rank, { root, pids: processTree(root), walkedMs: nowMs });
    }
    const all = [...new Set([...this.trees.values()].flatMap((t) => t.pids))];
    if (all.length === 0) return;
    // pidusage leaves out the pids that are gone when asked for several, and fails when asked for one
    const stats = await pidusage(all, { maxage: this.maxageMs }).catch(() => ({} as Record<string, pidusage.Status>));
    const recvNs = this.opts.now();
    const lines: string[] = [];
    for (const [rank, tree] of [...this.trees].sort((a, b) => a[0] - b[0])) {
      const u = sumTree(tree.pids.map((p) => stats[p]));
      if (u.nprocs === 0) continue; // the rank's process is gone
      lines.push(`${recvNs},${rank},${tree.root},${u.cpuPercent.toFixed(1)},${u.rssBytes},${u.nprocs}\n`);
    }
    this.out.append(lines.join(''));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    await this.out.close();
  }
}

/** Sums the readings of one tree; a pid that is gone, or read while exiting (NaN fields), is left out. */
function sumTree(readings: ({ cpu: number; memory: number } | undefined)[]): TreeUsage {
  let cpuPercent = 0;
  let rssBytes = 0;
  let nprocs = 0;
  for (const r of readings) {
    if (!r || !Number.isFinite(r.cpu) || !Number.isFinite(r.memory)) continue;
    cpuPercent += r.cpu;
    rssBytes += r.memory;
    nprocs++;
  }
  return { cpuPercent, rssBytes, nprocs };
}

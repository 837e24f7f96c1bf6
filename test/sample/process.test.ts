// The process sampler on real processes: a /usr/bin/python3 that has imported torch (the RSS of a real
// rank), a rank with a child process (the tree is summed), a busy and a sleeping process (CPU %), and a
// tree whose children come and go for hundreds of ticks (no descriptor growth, no state kept for them).
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessSampler, processTree } from '../../src/sample/process.js';
import { lineCount, nowNs, readSamples, waitFor } from './helpers.js';

const PYTHON = process.env.MOE_RUN_PYTHON ?? '/usr/bin/python3';
const started: ResultPromise[] = [];

afterEach(async () => {
  for (const p of started.splice(0)) {
    // the whole tree: a child left alive would keep the pipe open and the promise pending
    for (const pid of processTree(p.pid!).reverse()) process.kill(pid, 'SIGKILL');
    await p.catch(() => {});
  }
});

/** Starts `argv` and waits for its "ready" line. */
async function ready(argv: string[]): Promise<number> {
  const p = execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', detached: false });
  started.push(p);
  const lines = createInterface({ input: p.stdout! });
  const [line] = (await once(lines, 'line')) as [string];
  expect(line).toBe('ready');
  return p.pid!;
}

function csvPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'moe-run-proc-')), 'process.csv');
}

describe('process sampler', () => {
  it('samples each rank\'s tree: a torch process with a plausible RSS, a rank with a child summed', async () => {
    const torchPid = await ready([PYTHON, '-c', 'import time, torch; x = torch.ones(1000, 1000); print("ready", flush=True); time.sleep(600)']);
    const parentPid = await ready([PYTHON, '-c', [
      'import subprocess, sys, time',
      'c = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.DEVNULL)',
      'print("ready", flush=True)',
      'time.sleep(600)',
    ].join('\n')]);
    const tree = processTree(parentPid);
    expect(tree[0]).toBe(parentPid);
    expect(tree).toHaveLength(2);

    const path = csvPath();
    const sampler = new ProcessSampler({ pids: () => new Map([[0, torchPid], [1, parentPid]]), intervalMs: 100, csvPath: path, now: nowNs, log: () => {} });
    await sampler.start();
    await waitFor(async () => (await lineCount(path)) > 10, '5 ticks');
    await sampler.stop();

    const { header, rows } = await readSamples(path);
    expect(header).toEqual(['recv_ns', 'rank', 'pid', 'cpu_percent', 'rss_bytes', 'nprocs']);
    expect(new Set(rows.map((r) => r.rank))).toEqual(new Set(['0', '1']));
    for (const r of rows) {
      expect(r.pid).toBe(String(r.rank === '0' ? torchPid : parentPid));
      expect(Number(r.cpu_percent)).toBeGreaterThanOrEqual(0);
    }
    const rank0 = rows.filter((r) => r.rank === '0');
    const rank1 = rows.filter((r) => r.rank === '1');
    // torch imported and a 4 MB tensor: tens to hundreds of MB, not bytes and not gigabytes
    for (const r of rank0) {
      expect(Number(r.rss_bytes)).toBeGreaterThan(30e6);
      expect(Number(r.rss_bytes)).toBeLessThan(2e9);
      expect(r.nprocs).toBe('1');
    }
    // the rank and its child, both Python interpreters: two processes, more memory than either alone
    for (const r of rank1) expect(r.nprocs).toBe('2');
    // the kernel's own figure for the parent alone (kB), read independently of the sampler
    const aloneKb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${parentPid}/status`, 'utf8'))![1]);
    expect(Number(rank1[rank1.length - 1].rss_bytes)).toBeGreaterThan(aloneKb * 1024);
  });

  it('CPU %: a busy loop\'s share as the kernel counts it, a sleeping process near none', async () => {
    const busyPid = await ready([PYTHON, '-c', 'print("ready", flush=True)\nwhile True: pass']);
    const idlePid = await ready([PYTHON, '-c', 'print("ready", flush=True); import time; time.sleep(600)']);
    // the busy loop's real share of a core over the sampling, from the scheduler's own counter (ns run,
    // /proc/<pid>/schedstat), not from the stat fields the sampler reads: on a shared, loaded machine it
    // may get far less than a whole core, so the sampler is held to that share, not to 100%
    const ranNs = () => Number(readFileSync(`/proc/${busyPid}/schedstat`, 'utf8').split(' ')[0]);
    const path = csvPath();
    const sampler = new ProcessSampler({ pids: () => new Map([[0, busyPid], [1, idlePid]]), intervalMs: 100, csvPath: path, now: nowNs, log: () => {} });
    const [ran0, wall0] = [ranNs(), nowNs()];
    await sampler.start();
    await waitFor(() => sampler.ticks >= 30, '30 ticks');
    await sampler.stop();
    const share = (100 * (ranNs() - ran0)) / Number(nowNs() - wall0);
    const { rows } = await readSamples(path);
    // each row covers the interval since the one before (the first, the process's whole life so far):
    // weighted by those intervals, the rows give the share over the sampling
    const busy = rows.filter((r) => r.rank === '0').map((r) => ({ at: Number(r.recv_ns), cpu: Number(r.cpu_percent) }));
    let weighted = 0;
    for (let i = 1; i < busy.length; i++) weighted += busy[i].cpu * (busy[i].at - busy[i - 1].at);
    const mean = weighted / (busy[busy.length - 1].at - busy[0].at);
    expect(share).toBeGreaterThan(5); // the loop did run
    expect(mean).toBeGreaterThan(share * 0.6);
    expect(mean).toBeLessThan(share * 1.4 + 5);
    expect(Math.max(...rows.filter((r) => r.rank === '1').slice(1).map((r) => Number(r.cpu_percent)))).toBeLessThan(10);
  });

  it('a rank whose process has ended gets no more rows', async () => {
    const pid = await ready([PYTHON, '-c', 'print("ready", flush=True); import time; time.sleep(600)']);
    const path = csvPath();
    const sampler = new ProcessSampler({ pids: () => new Map([[0, pid], [1, 999_999_999]]), intervalMs: 50, csvPath: path, now: nowNs, log: () => {} });
    await sampler.start();
    await waitFor(async () => (await lineCount(path)) > 3, 'rows');
    const p = started.pop()!;
    p.kill('SIGKILL');
    await p.catch(() => {});
    const ticksAtExit = sampler.ticks;
    await waitFor(() => sampler.ticks > ticksAtExit + 5, 'ticks after the exit');
    await sampler.stop();
    const { rows } = await readSamples(path);
    expect(rows.every((r) => r.rank === '0')).toBe(true);
    expect(rows.length).toBeLessThanOrEqual(ticksAtExit + 1);
  });

  it('keeps no descriptors of processes that are gone: their count stays flat over hundreds of ticks', async () => {
    // every 30 ms the shell starts a new sleep: a tree whose members keep changing
    const pid = await ready(['sh', '-c', 'echo ready; while :; do sleep 0.03; done']);
    const sampler = new ProcessSampler({ pids: () => new Map([[0, pid]]), intervalMs: 10, csvPath: csvPath(), now: nowNs, log: () => {}, walkEveryMs: 0 });
    const fds = () => readdirSync('/proc/self/fd').length;
    await sampler.start();
    await waitFor(() => sampler.ticks >= 80, '80 ticks');
    const early = fds();
    await waitFor(() => sampler.ticks >= 350, '350 ticks', 120_000);
    const late = fds();
    await sampler.stop();
    // hundreds of sleeps were seen between the two counts; one descriptor left open per pid would show
    expect(late - early).toBeLessThan(20);
  });
});

// report.html and report.md of a real two-rank run (the HTA rank-0/1 pair) with GPU samples replayed
// from a real H200 nvidia-smi capture: self-contained (nothing fetched), and rendered by headless
// Chromium into a non-trivial screenshot with no network request from the page.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { writeRunReports } from '../../src/report/index.js';
import { RunDir } from '../../src/run-dir.js';
import { HTA, REPO, loadTrace, makeRunDir, tempFolder } from '../analyze/helpers.js';

const CAPTURE = join(REPO, '..', 'shared', 'nvidia-smi', 'linux-x86_64__nvidia-h200__590.48.01.txt');

/** The capture's `--query-gpu` row of one section ("idle" or "load"), keyed by field name without unit. */
function captureRow(section: 'idle' | 'load'): Record<string, string> {
  const lines = readFileSync(CAPTURE, 'utf8').split('\n');
  const at = lines.findIndex((l) => l.startsWith(`# ${section} :: query-gpu`));
  const header = lines[at + 3].split(',').map((h) => h.trim().replace(/ \[.*\]$/, ''));
  const values = lines[at + 4].split(',').map((v) => v.trim());
  return Object.fromEntries(header.map((h, i) => [h, values[i]]));
}

const FIELDS = ['index', 'utilization.gpu', 'memory.used', 'memory.total', 'power.draw'];

/** samples/ as the samplers write them: idle, then the load row through the middle, then idle again. */
async function writeSamples(run: RunDir, fromNs: bigint, toNs: bigint): Promise<void> {
  const idle = captureRow('idle');
  const load = captureRow('load');
  const smi = [['recv_ns', 'host', 'timestamp_ns', ...FIELDS].join(',')];
  const proc = ['recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs'];
  const step = (toNs - fromNs) / 40n;
  for (let k = 0n; k <= 40n; k++) {
    const t = fromNs + k * step;
    for (const gpu of [0, 1]) {
      const row = k > 5n && k < 35n - BigInt(gpu) * 8n ? load : idle;
      smi.push([t, 'testhost', t, gpu, ...FIELDS.slice(1).map((f) => row[f])].join(','));
      proc.push([t, gpu, 1000 + gpu, 90 + Number(k % 7n) * 5 - gpu * 20, 2_000_000_000 + Number(k) * 10_000_000, 3].join(','));
    }
  }
  await writeFile(run.nvidiaSmiCsv, smi.join('\n') + '\n');
  await writeFile(run.processCsv, proc.join('\n') + '\n');
}

async function pairRun(): Promise<string> {
  const paths = [0, 1].map((r) => join(HTA, `trace_filter/sampled_rank-${r}.json.gz`));
  const evs = loadTrace(paths[0]).traceEvents.filter((e) => e.ph === 'X' && e.cat !== 'Trace');
  const from = BigInt(Math.min(...evs.map((e) => e.ts))) * 1000n;
  const to = BigInt(Math.max(...evs.map((e) => e.ts + e.dur))) * 1000n;
  const dir = await makeRunDir('pair', [0, 1].map((rank) => ({
    rank, trace: paths[rank],
    info: { throughput: { tokens: 8192, seconds: 1.2, tokens_per_s: 6826.7 }, perplexity: 17.25, stages: { load_s: 42.1, region_s: 1.24 } },
  })), { rendezvous: { host: '127.0.0.1', port: 1, releases: { start: from.toString() }, clock_offsets: {} } });
  await writeSamples(new RunDir(dir), from, to);
  return dir;
}

/** Every URL the page could fetch: src/href/xlink:href attributes, CSS url() and @import. */
function fetchableUrls(html: string): string[] {
  return [
    ...[...html.matchAll(/\s(?:src|href|xlink:href|srcset|action|poster|data)\s*=\s*["']?([^"'\s>]+)/gi)].map((m) => m[1]),
    ...[...html.matchAll(/url\(\s*['"]?([^'")]+)/gi)].map((m) => m[1]),
    ...[...html.matchAll(/@import\s+['"]?([^'";\s]+)/gi)].map((m) => m[1]),
  ];
}

const chromium = ['chromium', 'chromium-browser'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);

/** Renders a page headless with name resolution off and a net log; returns the page's own requests. */
function render(url: string, png: string, netLog: string, profile: string, height = 2600): string[] {
  execFileSync(chromium!, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND', `--log-net-log=${netLog}`,
    `--user-data-dir=${profile}`,
    `--screenshot=${png}`, `--window-size=1280,${height}`, url,
  ], { stdio: 'ignore', timeout: 90_000 });
  const log = JSON.parse(readFileSync(netLog, 'utf8')) as { constants: { logEventTypes: Record<string, number> }; events: { type: number; params?: { url?: string; initiator?: string } }[] };
  const start = log.constants.logEventTypes.URL_REQUEST_START_JOB;
  // The browser's own background requests carry "not an origin"; the page's carry its (file) origin.
  return log.events
    .filter((e) => e.type === start && e.params?.url && e.params.initiator !== 'not an origin')
    .map((e) => e.params!.url!)
    .filter((u) => !u.startsWith('file:'));
}

describe('report.md and report.html', () => {
  it('are written from the summary, self-contained, with every chart', async () => {
    const dir = await pairRun();
    const summary = await writeRunReports(dir);
    const run = new RunDir(dir);
    const html = await readFile(run.reportHtml, 'utf8');
    const md = await readFile(run.reportMd, 'utf8');

    expect(fetchableUrls(html)).toEqual([]);
    expect(html).not.toMatch(/<script|<link|<iframe|<object|<embed|<img/i);
    // stacked breakdowns (GPU, CPU), skew histogram, GPU util + memory, process CPU + RSS
    expect(html.match(/<svg /g)?.length).toBe(7);
    for (const f of summary.findings) {
      expect(md).toContain(f);
      expect(html).toContain(f.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;'));
    }
    const load = captureRow('load');
    expect(summary.gpu_counters.map((g) => g.mem_peak_mib)).toEqual([parseFloat(load['memory.used']), parseFloat(load['memory.used'])]);
    expect(summary.gpu_counters.map((g) => g.rank)).toEqual([0, 1]);
    expect(md).toMatch(/\| Rank \| Host \| Device \|/);
  });

  it.skipIf(!chromium)('renders in headless Chromium with no request leaving the page', async () => {
    const dir = await pairRun();
    await writeRunReports(dir);
    const out = await tempFolder('shot');
    const png = join(out, 'report.png');
    const requests = render(pathToFileURL(new RunDir(dir).reportHtml).href, png, join(out, 'net.json'), join(out, 'profile'));
    expect(requests).toEqual([]);
    const head = readFileSync(png).subarray(0, 24);
    expect(head.subarray(1, 4).toString()).toBe('PNG');
    expect(head.readUInt32BE(16)).toBe(1280);
    // a blank or text-only page compresses to a few KiB; tables and charts do not
    expect(statSync(png).size).toBeGreaterThan(60_000);

    // the detector itself: a page that fetches is caught
    const bad = join(out, 'bad.html');
    await writeFile(bad, '<html><body><img src="http://example.invalid/x.png"></body></html>');
    expect(render(pathToFileURL(bad).href, join(out, 'bad.png'), join(out, 'bad-net.json'), join(out, 'profile-bad'), 300)).toEqual(['http://example.invalid/x.png']);
  });
  if (!chromium) it.skip('headless Chromium is not installed (apt-get install chromium): the rendering check is skipped', () => {});
});

// report.html: one self-contained page (inline CSS, inline SVG, no scripts, no fonts or anything else
// fetched), so it opens from a cluster's file system, an archive or a mail attachment alike.
import type { Summary } from '../analyze/summary.js';
import { esc, histogram, lineChart, stackedBars, type Series, type StackedRow } from './svg.js';
import { mainTables, topOps, type Table } from './tables.js';

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d232a;background:#fff}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2e7;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#5a6570}.status-ok{color:#2a7d2e}.status-bad{color:#b3261e;font-weight:600}
ul.findings{background:#f5f8fb;border-left:4px solid #4e79a7;padding:10px 14px 10px 30px;margin:10px 0}
ul.findings li{margin:4px 0}
table{border-collapse:collapse;margin:6px 0 4px;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #dde2e7;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f3f6}
tr:nth-child(even) td{background:#fafbfc}.caption{color:#5a6570;font-size:12.5px;margin:2px 0}
.chart{width:100%;max-width:900px;height:auto;display:block;margin:6px 0 14px}
.chart text{font:11px system-ui,sans-serif;fill:#333}.chart .rl,.chart .yt{text-anchor:end}.chart .tk{text-anchor:middle}
.chart .in{text-anchor:middle;fill:#fff;font-weight:600}.chart .grid{stroke:#e6e9ed}.chart .axis{stroke:#888}
details{margin:6px 0}summary{cursor:pointer;color:#2f5d8a}
`;

function table(t: Table, level = 'h2'): string {
  return `<section id="${esc(t.id)}"><${level}>${esc(t.title)}</${level}>` +
    (t.caption ? `<p class="caption">${esc(t.caption)}</p>` : '') +
    `<table><thead><tr>${t.headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
    t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('') +
    '</tbody></table></section>';
}

function breakdownCharts(s: Summary): string {
  const traced = s.ranks.filter((r) => r.events > 0);
  if (!traced.length) return '';
  const out = ['<h2>Where the time goes</h2>'];
  const gpuRows: StackedRow[] = traced.flatMap((r) =>
    r.gpus.map((g) => ({
      label: `rank ${r.rank} · GPU ${g.device}`,
      values: [g.breakdown.communication_s, g.breakdown.compute_s, g.breakdown.memory_s, g.breakdown.idle_s],
    })));
  if (gpuRows.length) {
    out.push('<p class="caption">Each GPU over the profiled region: NCCL kernels, then other kernels where no NCCL ran, then copies and memsets, then idle.</p>',
      stackedBars(gpuRows, ['communication (NCCL)', 'compute kernels', 'memcpy / memset', 'idle']));
  }
  const cpuRows: StackedRow[] = traced.map((r) => ({
    label: `rank ${r.rank} · CPU`,
    values: [r.cpu.breakdown.collectives_s, r.cpu.breakdown.other_ops_s, r.cpu.breakdown.idle_s],
  }));
  out.push('<p class="caption">The CPU side of each rank over the region (any thread): in a collective, in other operators, in no operator (Python, waiting).</p>',
    stackedBars(cpuRows, ['collectives', 'other operators', 'no operator'], ['#e15759', '#4e79a7', '#bab0ac']));
  return out.join('');
}

function counterCharts(s: Summary): string {
  const out: string[] = [];
  const gpus = s.gpu_counters.filter((g) => g.series.t_s.length > 0);
  const name = (g: (typeof gpus)[number]) => `${g.host} GPU ${g.index}${g.rank !== undefined ? ` (rank ${g.rank})` : ''}`;
  if (gpus.length) {
    out.push('<h2>GPUs over time (nvidia-smi)</h2>',
      lineChart(gpus.map((g): Series => ({ label: name(g), t: g.series.t_s, y: g.series.util_pct })), { yLabel: 'utilisation %', yMax: 100 }),
      lineChart(gpus.map((g): Series => ({ label: name(g), t: g.series.t_s, y: g.series.mem_mib })), {
        yLabel: 'memory used, MiB', yMax: Math.max(0, ...gpus.map((g) => g.mem_total_mib ?? 0)) || undefined,
      }));
  }
  const procs = s.process_counters.filter((p) => p.series.t_s.length > 0);
  if (procs.length) {
    out.push('<h2>Rank processes over time</h2>',
      lineChart(procs.map((p): Series => ({ label: `rank ${p.rank}`, t: p.series.t_s, y: p.series.cpu_pct })), { yLabel: 'CPU % (100 = one core)' }),
      lineChart(procs.map((p): Series => ({ label: `rank ${p.rank}`, t: p.series.t_s, y: p.series.rss_mib })), { yLabel: 'RSS, MiB' }));
  }
  return out.join('');
}

function skewCharts(s: Summary): string {
  const withData = s.collectives.filter((c) => c.histogram.counts.length > 0);
  if (!withData.length) return '';
  return '<h2>Collective arrival skew</h2>' + withData
    .map((c) => `<h3>${esc(c.label)}: ${c.matched_calls} matched calls</h3>` +
      histogram(c.histogram.edges_ms, c.histogram.counts, 'last arrival − first arrival, ms (calls per bin)'))
    .join('');
}

export function renderHtml(s: Summary): string {
  const run = s.run;
  const tables = mainTables(s);
  const ops = topOps(s);
  const statusClass = run.status === 'ok' ? 'status-ok' : 'status-bad';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>moe-run report: ${esc(run.name)}</title><style>${CSS}</style></head>
<body><main>
<h1>moe-run report: ${esc(run.name)}</h1>
<p class="meta">Run <code>${esc(run.run_id)}</code> · created ${esc(run.created)} · ${run.world_size} rank(s) on ${run.nnodes} node(s) · status <span class="${statusClass}">${esc(run.status)}</span>${run.failure ? ` — ${esc(run.failure)}` : ''}</p>
<h2>Findings</h2>
<ul class="findings">${(s.findings.length ? s.findings : ['(nothing to report: no rank produced a trace)']).map((f) => `<li>${esc(f)}</li>`).join('')}</ul>
${breakdownCharts(s)}
${tables.map((t) => table(t)).join('\n')}
${skewCharts(s)}
${counterCharts(s)}
${ops.length ? `<h2>Top operators (ops.json)</h2>${ops.map((t) => `<details><summary>${esc(t.title)}</summary>${table(t, 'h3')}</details>`).join('')}` : ''}
${s.notes.length ? `<h2>Notes</h2><ul>${s.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
</main></body></html>
`;
}

// report.md: the findings and the tables, readable in a terminal or on a code host.
import type { Summary } from '../analyze/summary.js';
import { mainTables, topOps, type Table } from './tables.js';

/** A cell may not break the table: pipes escaped, line breaks flattened. */
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

export function markdownTable(headers: string[], rows: string[][]): string {
  return [
    `| ${headers.map(cell).join(' | ')} |`,
    `| ${headers.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

const section = (t: Table, level = '##') =>
  `${level} ${t.title}\n\n${t.caption ? `${t.caption}\n\n` : ''}${markdownTable(t.headers, t.rows)}\n`;

export function renderMarkdown(s: Summary): string {
  const run = s.run;
  const out = [
    `# moe-run report: ${run.name}`,
    '',
    `Run \`${run.run_id}\` · created ${run.created} · ${run.world_size} rank(s) on ${run.nnodes} node(s) · status **${run.status}**` +
      (run.failure ? ` (${run.failure})` : ''),
    '',
    '## Findings',
    '',
    ...(s.findings.length ? s.findings.map((f) => `- ${f}`) : ['- (nothing to report: no rank produced a trace)']),
    '',
    ...mainTables(s).map((t) => section(t)),
  ];
  const ops = topOps(s);
  if (ops.length) out.push('## Top operators (ops.json)', '', ...ops.map((t) => section(t, '###')));
  if (s.notes.length) out.push('## Notes', '', ...s.notes.map((n) => `- ${n}`), '');
  return out.join('\n');
}

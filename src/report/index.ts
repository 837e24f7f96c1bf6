// The report stage: summary.json → report.md and report.html in the run directory.
import { analyzeRunDir, type Summary } from '../analyze/index.js';
import type { PostRunStage } from '../launch/index.js';
import { RunDir, writeAtomic } from '../run-dir.js';
import { renderHtml } from './html.js';
import { renderMarkdown } from './markdown.js';

export { renderHtml } from './html.js';
export { renderMarkdown } from './markdown.js';

/** Writes report.md and report.html of a run from its summary. */
export async function writeReports(dir: string, summary: Summary): Promise<{ md: string; html: string }> {
  const run = new RunDir(dir);
  await writeAtomic(run.reportMd, renderMarkdown(summary));
  await writeAtomic(run.reportHtml, renderHtml(summary));
  return { md: run.reportMd, html: run.reportHtml };
}

/** The launcher's post-run step (and `moe-run report DIR`): analyze, then write both reports. */
export async function writeRunReports(dir: string): Promise<Summary> {
  const summary = await analyzeRunDir(dir);
  await writeReports(dir, summary);
  return summary;
}

/** Analysis and reports at the end of every run, also after a failed one (it says what was kept). */
export const reportStage: PostRunStage = {
  name: 'report',
  alsoAfterFailure: true,
  async run(ctx) {
    const summary = await writeRunReports(ctx.runDir.root);
    for (const f of summary.findings) ctx.say(`report: ${f}`);
    ctx.say(`report: ${ctx.runDir.reportHtml}`);
  },
};

// The trace stage's entry points: the `moe-run merge` command and the post-run merge stage. The stages
// after this one import its building blocks from their own files (analyze: reader.ts, align.ts).
import { statSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { PostRunStage } from '../launch/index.js';
import { mergeRunDir, mergeTraceFiles, type MergeResult } from './merge.js';

function summary(r: MergeResult): string[] {
  const traces = r.ranks.filter((x) => x.trace).length;
  return [
    `merge: ${r.events} events, ${traces} rank trace${traces === 1 ? '' : 's'} (${r.ranks.map((x) => `rank ${x.rank}: ${x.alignment?.method ?? 'no trace'}`).join(', ')}) → ${r.out}`,
    ...r.warnings.map((w) => `merge: warning: ${w}`),
  ];
}

/**
 * `moe-run merge RUN_DIR` (rebuilds RUN_DIR/timeline.json.gz) or `moe-run merge -o OUT TRACE…`
 * (any per-rank traces). Returns what to print.
 */
export async function mergeCommand(inputs: string[], opts: { out?: string } = {}): Promise<string> {
  if (opts.out !== undefined) return summary(await mergeTraceFiles(inputs, opts.out)).join('\n') + '\n';
  const isDir = inputs.length === 1 && statSync(inputs[0], { throwIfNoEntry: false })?.isDirectory();
  if (!isDir) {
    throw new UserError(`merge: give one run directory, or -o OUT.json.gz followed by trace files (got ${inputs.join(' ')})`);
  }
  return summary(await mergeRunDir(inputs[0])).join('\n') + '\n';
}

/** The merge at the end of every run, also after a failed one (the timeline shows what happened). */
export const mergeStage: PostRunStage = {
  name: 'merge',
  alsoAfterFailure: true,
  async run(ctx) {
    const r = await mergeRunDir(ctx.runDir.root);
    for (const line of summary(r)) ctx.say(line);
  },
};

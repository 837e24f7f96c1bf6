// `moe-run pack DIR`: the run directory as one <run>.tar.gz, to copy off a cluster or attach to a bug.
// The archive is deterministic (same directory → same bytes): entries in sorted order, no owner or
// access times (portable), one fixed mtime, and gzip's own header without a time stamp. So two packs
// of one run can be compared by checksum.
import { existsSync } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { create } from 'tar';
import { UserError } from './errors.js';
import type { PostRunStage } from './launch/index.js';
import { RunDir } from './run-dir.js';

export interface PackOptions {
  /** overwrite an existing archive */
  force?: boolean;
  /** archive path; default `<run>.tar.gz` next to the run directory */
  out?: string;
}

/** Every file and folder under `root`, relative to `root`'s parent, sorted by byte order of the path. */
async function listSorted(root: string, skip: string): Promise<string[]> {
  const parent = dirname(root);
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    out.push(relative(parent, dir));
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      const p = join(dir, e.name);
      if (p === skip) continue;
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(relative(parent, p));
      // sockets, links and the like are not part of a run's results
    }
  };
  await walk(root);
  // Sorting the whole list (not per folder) fixes the order regardless of readdir's order.
  return out.map((p) => p.split(sep).join('/')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The manifest's creation time, so that an archive says when its run was made; epoch 0 if unknown. */
async function archiveTime(run: RunDir): Promise<Date> {
  try {
    const created = new Date((await run.readManifest()).created);
    if (!Number.isNaN(created.getTime())) return created;
  } catch {
    // an unreadable manifest still packs (a crashed run is worth sending to someone)
  }
  return new Date(0);
}

/** Packs a run directory; returns the archive's path. */
export async function packRunDir(dir: string, opts: PackOptions = {}): Promise<string> {
  const run = new RunDir(dir);
  if (!existsSync(run.root)) throw new UserError(`pack: ${dir} does not exist`);
  if (!run.isRunDir()) throw new UserError(`pack: ${dir} is not a run directory (no manifest.json in it)`);
  const out = resolve(opts.out ?? run.archive);
  if (existsSync(out) && !opts.force) {
    throw new UserError(`pack: ${out} already exists; pass --force to overwrite it`);
  }
  const files = await listSorted(run.root, out);
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    await create(
      {
        file: tmp,
        cwd: dirname(run.root),
        gzip: true,
        portable: true,
        noDirRecurse: true,
        mtime: await archiveTime(run),
      },
      files,
    );
    await rename(tmp, out);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return out;
}


/** `--archive` / output.archive: the run packed last, also after a failure (the logs are what to send). */
export const packStage: PostRunStage = {
  name: 'pack',
  alsoAfterFailure: true,
  when: (ctx) => ctx.archive,
  async run(ctx) {
    ctx.say(`pack: ${await packRunDir(ctx.runDir.root)}`);
  },
};

// pack: a run directory → <run>.tar.gz, the same bytes every time, never overwriting by accident.
import { mkdir, readFile, writeFile, utimes } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { list } from 'tar';
import { packRunDir } from '../../src/pack.js';
import { UserError } from '../../src/errors.js';
import { tempFolder } from '../analyze/helpers.js';

async function makeRun(): Promise<string> {
  const root = await tempFolder('pack');
  const dir = join(root, 'tiny-20260101-000000');
  await mkdir(join(dir, 'rank-1'), { recursive: true });
  await mkdir(join(dir, 'rank-0'), { recursive: true });
  await mkdir(join(dir, 'samples'), { recursive: true });
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ name: 'tiny', created: '2026-01-01T00:00:00.000Z' }));
  await writeFile(join(dir, 'rank-0', 'stdout.log'), 'hello from rank 0\n');
  await writeFile(join(dir, 'rank-1', 'stdout.log'), 'hello from rank 1\n');
  await writeFile(join(dir, 'samples', 'process.csv'), 'recv_ns,rank,pid,cpu_percent,rss_bytes,nprocs\n');
  return dir;
}

const sha = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');

describe('packRunDir', () => {
  it('writes the same bytes twice, even after the files were touched', async () => {
    const dir = await makeRun();
    const first = await packRunDir(dir);
    expect(first).toBe(`${dir}.tar.gz`);
    const h1 = await sha(first);
    // New mtimes on disk must not change the archive: it carries one fixed time.
    await utimes(join(dir, 'rank-0', 'stdout.log'), new Date(), new Date());
    await packRunDir(dir, { force: true });
    expect(await sha(first)).toBe(h1);

    const entries: { path: string; type: string; mtime?: Date }[] = [];
    await list({ file: first, onReadEntry: (e) => entries.push({ path: e.path, type: e.type, mtime: e.mtime }) });
    const paths = entries.map((e) => e.path);
    expect(paths).toEqual([...paths].sort());
    expect(paths).toContain('tiny-20260101-000000/rank-0/stdout.log');
    expect(paths).toContain('tiny-20260101-000000/manifest.json');
    // files carry the run's creation time (portable archives leave folders' times out)
    for (const e of entries.filter((x) => x.type === 'File')) {
      expect(e.mtime?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    }
  });

  it('refuses to overwrite an archive without force, and says how', async () => {
    const dir = await makeRun();
    await packRunDir(dir);
    const again = packRunDir(dir);
    await expect(again).rejects.toBeInstanceOf(UserError);
    await expect(packRunDir(dir)).rejects.toThrow(/--force/);
    await expect(packRunDir(dir, { force: true })).resolves.toBe(`${dir}.tar.gz`);
  });

  it('refuses a folder that is not a run directory', async () => {
    const root = await tempFolder('pack');
    await expect(packRunDir(root)).rejects.toThrow(/not a run directory/);
  });
});

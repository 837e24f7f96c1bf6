// The moe-run checkout (or installed package) root: ranks need its patches/ and workloads/.
// Found by walking up to package.json, because this file runs both from src/ (tests) and dist/src/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`moe-run: no package.json above ${start}`);
  }
}

export const repoRoot = findRoot(dirname(fileURLToPath(import.meta.url)));
export const bootstrapPath = join(repoRoot, 'patches', 'moe_run_bootstrap.py');
export const workloadsDir = join(repoRoot, 'workloads');

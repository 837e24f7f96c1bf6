// Runs the real executable (bin/moe-run → dist/) as a user would. The build is refreshed first when
// any source is newer than it, so `npx vitest run test/cli` works right after an edit.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const built = join(repoRoot, 'dist', 'src', 'cli.js');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const isFresh = () => existsSync(built) && statSync(built).mtimeMs >= newestSource(join(repoRoot, 'src'));
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Rebuilds dist/ when a source is newer. Test files run in parallel, so one builds (holding a lock
 * directory) while the others wait. tsc still writes its output when another stage's file has a type
 * error; that is not this test's business, so only a missing cli.js fails here.
 */
export function ensureBuilt(): void {
  const lock = join(repoRoot, 'dist', '.test-build-lock');
  mkdirSync(join(repoRoot, 'dist'), { recursive: true });
  for (;;) {
    if (isFresh()) return;
    try {
      mkdirSync(lock);
      break;
    } catch {
      sleep(500); // someone else is building
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 300_000) rmSync(lock, { recursive: true, force: true });
    }
  }
  try {
    spawnSync('npx', ['tsc', '-p', '.'], { cwd: repoRoot, stdio: 'ignore' });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
  if (!existsSync(built)) throw new Error(`npx tsc -p . did not produce ${built}`);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function moeRun(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'moe-run'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

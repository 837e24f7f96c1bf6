// Process-table checks for the launch tests: whether a pid is still a live process (a zombie waiting
// for its parent to reap it counts as gone: it runs nothing and holds nothing).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Every live process whose environment carries `marker` (KEY=VALUE): what a test's run left behind. */
export function processesWithEnv(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (env.includes(marker) && alive(Number(entry))) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

export async function waitUntil(cond: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

export interface Launched {
  pid: number;
  stdout: () => string;
  stderr: () => string;
  /** stdout and stderr together, in the order they came */
  output: () => string;
  exit: Promise<number | null>;
  signal: (sig: NodeJS.Signals) => void;
}

/** Starts the real executable (bin/moe-run, built) in the background, collecting its output. */
export function startMoeRun(repoRoot: string, args: string[], env: Record<string, string> = {}): Launched {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'moe-run'), ...args], {
    cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let all = '';
  child.stdout.on('data', (d) => { out += d; all += d; });
  child.stderr.on('data', (d) => { err += d; all += d; });
  return {
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    output: () => all,
    exit: new Promise((resolve) => child.on('close', (code) => resolve(code))),
    signal: (sig) => child.kill(sig),
  };
}

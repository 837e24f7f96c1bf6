// Which Python runs the ranks when the config names none. The first python3 on PATH is often a
// venv or a distribution without torch while the system one has it (Debian's python3-torch), so
// look for one that can import torch rather than trusting PATH.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface ResolvedPython {
  python: string;
  /** how it was chosen, for doctor and the manifest */
  how: string;
}

const SYSTEM_PYTHON = '/usr/bin/python3';
// find_spec looks torch up without importing it (importing takes seconds).
const HAS_TORCH = "import importlib.util,sys;sys.exit(importlib.util.find_spec('torch') is None)";

export async function resolvePython(configured?: string, env: NodeJS.ProcessEnv = process.env): Promise<ResolvedPython> {
  if (configured) return { python: configured, how: 'from the config' };
  if (env.MOE_RUN_PYTHON) return { python: env.MOE_RUN_PYTHON, how: 'from $MOE_RUN_PYTHON' };
  const onPath = which('python3', env.PATH ?? '');
  if (onPath && await hasTorch(onPath)) return { python: onPath, how: 'the python3 on PATH, which has torch' };
  if (onPath !== SYSTEM_PYTHON && await hasTorch(SYSTEM_PYTHON)) {
    return { python: SYSTEM_PYTHON, how: `it has torch, the python3 on PATH ${onPath ? 'does not' : 'is missing'}` };
  }
  return { python: onPath ?? 'python3', how: 'no python3 with torch found' };
}

export function hasTorch(python: string): Promise<boolean> {
  return new Promise((done) => {
    execFile(python, ['-c', HAS_TORCH], { timeout: 20_000 }, (err) => done(err === null));
  });
}

/** The first executable `name` on PATH, like `command -v`. */
export function which(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

// Which interpreter runs the ranks when the config names none.
import { chmodSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasTorch, resolvePython } from '../../src/plan/python.js';

const SYSTEM = '/usr/bin/python3';

function binDir(python3: 'no-torch' | 'system'): string {
  const dir = mkdtempSync(join(tmpdir(), 'moe-run-py-'));
  const p = join(dir, 'python3');
  if (python3 === 'system') symlinkSync(SYSTEM, p);
  else {
    writeFileSync(p, '#!/bin/sh\nexit 1\n'); // answers every probe "no torch here"
    chmodSync(p, 0o755);
  }
  return dir;
}

describe('resolvePython', () => {
  it('the config, then $MOE_RUN_PYTHON, are taken as they are', async () => {
    expect((await resolvePython('/x/py', { MOE_RUN_PYTHON: '/y/py' })).python).toBe('/x/py');
    expect((await resolvePython(undefined, { MOE_RUN_PYTHON: '/y/py', PATH: '' })).python).toBe('/y/py');
  });

  it('the python3 on PATH when it has torch', async () => {
    const dir = binDir('system');
    const expected = (await hasTorch(SYSTEM)) ? join(dir, 'python3') : undefined;
    const r = await resolvePython(undefined, { PATH: dir });
    if (expected) expect(r.python).toBe(expected);
    else expect(r.how).toMatch(/no python3 with torch/);
  });

  it('a python3 on PATH without torch gives way to /usr/bin/python3 with torch', async () => {
    const dir = binDir('no-torch');
    const r = await resolvePython(undefined, { PATH: dir });
    expect(r.python).toBe((await hasTorch(SYSTEM)) ? SYSTEM : join(dir, 'python3'));
  });
});

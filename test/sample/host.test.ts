// The host inventory: what systeminformation, the rank's Python and nvidia-smi (the fake, replaying a
// real capture) say, checked against what this process and the capture say independently.
import { execa } from 'execa';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collectHostInventory } from '../../src/sample/index.js';
import { PATH_WITH_FAKE, SHARED_CAPTURES, captureSection } from './helpers.js';

const PYTHON = process.env.MOE_RUN_PYTHON ?? '/usr/bin/python3';
const savedPath = process.env.PATH;
afterEach(() => {
  process.env.PATH = savedPath;
  delete process.env.FAKE_NVIDIA_SMI_GPUS;
});

describe('collectHostInventory', () => {
  it('records CPU, memory, OS, versions and the GPUs', async () => {
    process.env.PATH = PATH_WITH_FAKE;
    process.env.FAKE_NVIDIA_SMI_GPUS = '2';
    const inv = (await collectHostInventory(PYTHON)) as {
      cpu: { model: string; cores: number }; memory: { total_bytes: number }; os: { kernel: string };
      versions: Record<string, string>; gpus: Record<string, string>[]; notes: string[];
    };
    expect(inv.cpu.cores).toBe(cpus().length);
    expect(inv.cpu.model.length).toBeGreaterThan(0);
    expect(inv.memory.total_bytes).toBe(totalmem());
    expect(inv.os.kernel).toBe((await execa('uname', ['-r'])).stdout.trim());
    expect(inv.versions.node).toBe(process.version);
    const py = await execa(PYTHON, ['-c', 'import platform, torch; print(platform.python_version(), torch.__version__)']);
    expect(`${inv.versions.python} ${inv.versions.torch}`).toBe(py.stdout.trim());
    expect(inv.notes).toEqual([]);

    // the GPUs as the capture's -L lists them, index and uuid per GPU
    const listed = captureSection(join(SHARED_CAPTURES, 'linux-x86_64__nvidia-h200__590.48.01.txt'), /capabilities :: list/)[0];
    const name = /^GPU 0: (.*) \(UUID/.exec(listed)![1];
    expect(inv.gpus.map((g) => [g.index, g.name])).toEqual([['0', name], ['1', name]]);
    expect(new Set(inv.gpus.map((g) => g.uuid)).size).toBe(2);
    expect(Number(inv.gpus[0]['memory.total'])).toBeGreaterThan(0);
  });

  it('says what it could not find: no nvidia-smi, a Python without torch', async () => {
    process.env.PATH = '/nonexistent';
    const inv = (await collectHostInventory(pythonWithoutTorch())) as { versions: Record<string, string>; gpus: unknown[]; notes: string[] };
    expect(inv.gpus).toEqual([]);
    expect(inv.versions.python).toMatch(/^\d+\.\d+\.\d+/);
    expect(inv.versions.torch).toBeUndefined();
    expect(inv.notes).toEqual(expect.arrayContaining([
      'nvidia-smi not found on PATH: no GPU inventory',
      expect.stringMatching(/cannot import torch: ModuleNotFoundError/),
    ]));
  });
});

/** The same Python started with -S: without site-packages, where torch lives, so `import torch` fails. */
function pythonWithoutTorch(): string {
  const wrapper = join(mkdtempSync(join(tmpdir(), 'moe-run-py-')), 'python3');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${PYTHON} -S "$@"\n`, { mode: 0o755 });
  return wrapper;
}

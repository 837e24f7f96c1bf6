// The host inventory for the manifest (issue 4): CPU, memory, OS and kernel (systeminformation), the
// Node, Python and torch versions, and the GPUs as nvidia-smi lists them. Taken once, before the ranks
// start: every part is asynchronous (systeminformation and the Python probe are child processes and file
// reads), so nothing here blocks the event loop, and the launcher awaits it before spawning.
import { execa } from 'execa';
import si from 'systeminformation';
import { findNvidiaSmi, gpuInventory } from './nvidia-smi.js';

/** Printed by the rank's Python: its own version, and torch's when it imports. */
const PYTHON_PROBE = `
import json, platform
out = {"python": platform.python_version()}
try:
    import torch
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
except Exception as e:
    out["torch_error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))
`;

interface PythonVersions { python?: string; torch?: string; torch_cuda?: string | null; torch_error?: string }

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}

async function pythonVersions(python: string): Promise<PythonVersions | { error: string }> {
  // importing torch takes seconds on a loaded machine; a hung interpreter must not hang the launch
  const r = await execa(python, ['-c', PYTHON_PROBE], { reject: false, stdin: 'ignore', timeout: 120_000 });
  if (r.exitCode !== 0) return { error: `${python} failed: ${lastLine(r.stderr) || r.shortMessage}` };
  try {
    return JSON.parse(lastLine(r.stdout)) as PythonVersions;
  } catch {
    return { error: `${python} printed no versions` };
  }
}

/**
 * The host as the manifest records it: `{ hostname, cpu, memory, os, versions, gpus, notes }`.
 * `versions` holds node, python, torch (and torch_cuda) for the manifest's `versions`; `notes` says what
 * could not be found out (no nvidia-smi, a Python without torch).
 */
export async function collectHostInventory(python: string): Promise<Record<string, unknown>> {
  const nvidiaSmi = findNvidiaSmi();
  const [cpu, mem, os, py, gpus] = await Promise.all([
    si.cpu(), si.mem(), si.osInfo(), pythonVersions(python),
    nvidiaSmi ? gpuInventory(nvidiaSmi) : Promise.resolve({ note: 'nvidia-smi not found on PATH: no GPU inventory' }),
  ]);
  const notes: string[] = [];
  if ('error' in py) notes.push(`Python versions unknown: ${py.error}`);
  else if (py.torch_error) notes.push(`${python} cannot import torch: ${py.torch_error}`);
  if ('note' in gpus) notes.push(gpus.note);
  const versions: Record<string, string> = { node: process.version };
  if (!('error' in py)) {
    if (py.python) versions.python = py.python;
    if (py.torch) versions.torch = py.torch;
    if (py.torch_cuda) versions.torch_cuda = py.torch_cuda;
  }
  return {
    hostname: os.hostname,
    cpu: {
      model: `${cpu.manufacturer} ${cpu.brand}`.trim(),
      cores: cpu.cores,
      physical_cores: cpu.physicalCores,
      sockets: cpu.processors,
    },
    memory: { total_bytes: mem.total },
    os: { platform: os.platform, distro: os.distro, release: os.release, kernel: os.kernel, arch: os.arch },
    python,
    versions,
    gpus: 'gpus' in gpus ? gpus.gpus : [],
    notes,
  };
}

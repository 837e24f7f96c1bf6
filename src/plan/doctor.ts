// `moe-run doctor`: can a run start here? One line per check, each OK or what is missing and the
// command that fixes it. The exit code says whether a GPU run can start; a last line says whether
// the CPU demo (configs/tiny-cpu.yaml) can.
import { execFile } from 'node:child_process';
import { delimiter, resolve } from 'node:path';
import type { RunConfig } from '../config/schema.js';
import { resolvePython, which } from './python.js';

// One interpreter start for every Python fact (importing torch and fairseq takes seconds each).
const PROBE = `
import json, sys
r = {"python": sys.version.split()[0]}
try:
    import torch
    import torch.distributed as dist
    r.update(torch=torch.__version__, cuda=torch.cuda.is_available(), cuda_devices=torch.cuda.device_count(),
             cuda_build=torch.version.cuda, gloo=dist.is_available() and dist.is_gloo_available())
except Exception as e:
    r["torch_error"] = "%s: %s" % (type(e).__name__, e)
try:
    import fairseq
    r["fairseq"] = getattr(fairseq, "__version__", "?") + " at " + fairseq.__path__[0]
    import fairseq.modules.moe
    r["fairseq_moe"] = True
except Exception as e:
    r["fairseq_error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(r))
`;

interface Probe {
  python?: string;
  torch?: string;
  cuda?: boolean;
  cuda_devices?: number;
  cuda_build?: string | null;
  gloo?: boolean;
  torch_error?: string;
  fairseq?: string;
  fairseq_moe?: boolean;
  fairseq_error?: string;
  /** the interpreter did not run or printed no JSON */
  failed?: string;
}

export interface DoctorResult {
  lines: string[];
  /** 0 when a GPU run can start */
  exitCode: number;
}

type Status = 'OK' | 'FAIL' | 'WARN';

export async function doctor(config?: RunConfig, env: NodeJS.ProcessEnv = process.env): Promise<DoctorResult> {
  const lines: string[] = [];
  const line = (status: Status, what: string, text: string) => lines.push(`${status.padEnd(4)} ${what.padEnd(11)} ${text}`);
  const needsFairseq = config === undefined || config.workload.kind === 'fairseq-eval-lm';
  const fairseqDir = config?.workload.kind === 'fairseq-eval-lm' ? config.workload.fairseq_dir : undefined;

  const { python, how } = await resolvePython(config?.python, env);
  const probe = await runProbe(python, env, fairseqDir);
  if (probe.failed) line('FAIL', 'python', `${python} (${how}) did not run: ${probe.failed}; set python: in the config or $MOE_RUN_PYTHON`);
  else line('OK', 'python', `${python}, Python ${probe.python}: ${how}`);

  const torchOk = probe.torch !== undefined;
  if (torchOk) line('OK', 'torch', probe.torch!);
  else if (!probe.failed) {
    line('FAIL', 'torch', `${python} cannot import torch (${probe.torch_error}): apt-get install python3-torch (Debian), or pip install torch, or point $MOE_RUN_PYTHON at a Python that has it`);
  }

  const cudaOk = probe.cuda === true && (probe.cuda_devices ?? 0) > 0;
  if (cudaOk) line('OK', 'cuda', `CUDA ${probe.cuda_build}, ${probe.cuda_devices} device(s) visible to torch`);
  else if (torchOk) {
    line('FAIL', 'cuda', probe.cuda_build
      ? `torch is built for CUDA ${probe.cuda_build} but sees no GPU: check the NVIDIA driver and CUDA_VISIBLE_DEVICES`
      : `torch ${probe.torch} is a CPU-only build: install a CUDA build (pip install torch, see pytorch.org for your CUDA version)`);
  }

  const fairseqOk = probe.fairseq_moe === true;
  const fix = `pip install -e <fairseq checkout, moe branch> (git clone -b moe https://github.com/facebookresearch/fairseq)${needsFairseq ? '' : '; not needed for this config'}`;
  const fairseqStatus: Status = needsFairseq ? 'FAIL' : 'WARN';
  if (fairseqOk) line('OK', 'fairseq', `${probe.fairseq}, with fairseq.modules.moe`);
  else if (probe.fairseq !== undefined) line(fairseqStatus, 'fairseq', `${probe.fairseq} has no MoE code (${probe.fairseq_error}): not the moe branch; ${fix}`);
  else if (!probe.failed) line(fairseqStatus, 'fairseq', `not importable by ${python} (${probe.fairseq_error}): ${fix}`);

  const gpus = await nvidiaSmiGpus(env);
  if (gpus === undefined) line('WARN', 'nvidia-smi', 'not on PATH: no GPU sampling; it comes with the NVIDIA driver');
  else if (typeof gpus === 'string') line('WARN', 'nvidia-smi', `failed: ${gpus}`);
  else line('OK', 'nvidia-smi', `${gpus.length} GPU(s)${gpus.length ? `: ${summarize(gpus)}` : ''}`);

  const onGpu = config !== undefined && (config.workload.kind === 'fairseq-eval-lm' || config.workload.device === 'cuda');
  const wanted = onGpu ? config.gpus : 1;
  const enoughGpus = (probe.cuda_devices ?? 0) >= wanted;
  if (cudaOk && !enoughGpus) line('FAIL', 'gpus', `the config asks for ${wanted} GPUs, torch sees ${probe.cuda_devices}: use --gpus ${probe.cuda_devices}`);

  const demoOk = torchOk && probe.gloo === true;
  line(demoOk ? 'OK' : 'FAIL', 'cpu demo', demoOk
    ? 'moe-run --config configs/tiny-cpu.yaml can run (torch with gloo)'
    : 'configs/tiny-cpu.yaml cannot run: it needs torch with torch.distributed (gloo), see the torch line');

  const gpuRunOk = torchOk && cudaOk && enoughGpus && (fairseqOk || !needsFairseq);
  lines.push(gpuRunOk ? 'A GPU run can start.' : 'A GPU run cannot start here: fix the FAIL lines above.');
  return { lines, exitCode: gpuRunOk ? 0 : 1 };
}

function runProbe(python: string, env: NodeJS.ProcessEnv, fairseqDir?: string): Promise<Probe> {
  const pythonPath = [fairseqDir && resolve(fairseqDir), env.PYTHONPATH].filter(Boolean).join(delimiter);
  return new Promise((done) => {
    execFile(python, ['-c', PROBE], { env: { ...env, PYTHONPATH: pythonPath }, timeout: 180_000, cwd: fairseqDir }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        done(JSON.parse(last) as Probe);
      } catch {
        done({ failed: (err?.message ?? stderr).trim().split('\n')[0] || 'no output' });
      }
    });
  });
}

/** GPU names from nvidia-smi; undefined when it is not installed, a string when it fails. */
function nvidiaSmiGpus(env: NodeJS.ProcessEnv): Promise<string[] | string | undefined> {
  const smi = which('nvidia-smi', env.PATH ?? '');
  if (!smi) return Promise.resolve(undefined);
  return new Promise((done) => {
    execFile(smi, ['--query-gpu=name', '--format=csv,noheader'], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) done((stderr || err.message).trim().split('\n')[0]);
      else done(stdout.split('\n').map((s) => s.trim()).filter(Boolean));
    });
  });
}

/** "4× NVIDIA H100 80GB HBM3" rather than four times the same name. */
function summarize(names: string[]): string {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return [...counts].map(([n, c]) => `${c}× ${n}`).join(', ');
}

// `moe-run doctor`: one line per check, and an exit code that says whether a GPU run can start.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { ensureBuilt, moeRun, repoRoot } from './cli.js';

beforeAll(() => ensureBuilt());

it('an interpreter that does not exist: a FAIL line that says what to set, exit 1', () => {
  const r = moeRun(['doctor'], { MOE_RUN_PYTHON: '/nonexistent/python3' });
  expect(r.code).toBe(1);
  expect(r.stdout).toMatch(/^FAIL python +\/nonexistent\/python3 \(from \$MOE_RUN_PYTHON\) did not run: .*MOE_RUN_PYTHON/m);
  expect(r.stdout).toMatch(/^FAIL cpu demo/m);
});

it('reports the interpreter\'s torch and whether CUDA, fairseq and the CPU demo are there', () => {
  const python = '/usr/bin/python3';
  const facts = JSON.parse(execFileSync(python, ['-c', `
import json
try:
    import torch; r = {"torch": torch.__version__, "cuda": torch.cuda.is_available() and torch.cuda.device_count() > 0}
except ImportError:
    r = {}
try:
    import fairseq.modules.moe; r["moe"] = True
except ImportError:
    r["moe"] = False
print(json.dumps(r))`], { encoding: 'utf8' })) as { torch?: string; cuda?: boolean; moe: boolean };
  // nvidia-smi kept off PATH: its absence is a warning, not a failure
  const r = moeRun(['doctor'], { MOE_RUN_PYTHON: python, PATH: '/usr/bin:/bin' });
  const lines = r.stdout.trimEnd().split('\n');
  expect(lines.every((l) => /^(OK|FAIL|WARN) /.test(l) || /^A GPU run can/.test(l))).toBe(true);
  expect(lines).toContainEqual(expect.stringMatching(/^WARN nvidia-smi +not on PATH/));
  if (facts.torch) expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^OK +torch +${facts.torch.replace(/[.+]/g, '\\$&')}$`)));
  expect(lines).toContainEqual(expect.stringMatching(facts.moe ? /^OK +fairseq/ : /^FAIL fairseq .*pip install -e/));
  expect(lines).toContainEqual(expect.stringMatching(facts.torch ? /^OK +cpu demo/ : /^FAIL cpu demo/));
  expect(r.code).toBe(facts.torch && facts.cuda && facts.moe ? 0 : 1);
});

it('counts the GPUs nvidia-smi lists (the fake replays a real H200 capture)', () => {
  const fake = join(repoRoot, 'test', 'fixtures', 'fake-nvidia-smi');
  const env = { PATH: [fake, dirname(process.execPath), '/usr/bin', '/bin'].join(':'), FAKE_NVIDIA_SMI_GPUS: '3' };
  const name = execFileSync(join(fake, 'nvidia-smi'), ['--query-gpu=name', '--format=csv,noheader'], { env, encoding: 'utf8' }).split('\n')[0];
  // a missing interpreter keeps this test quick; the nvidia-smi line does not depend on it
  const r = moeRun(['doctor'], { ...env, MOE_RUN_PYTHON: '/nonexistent/python3' });
  expect(r.stdout).toContain(`OK   nvidia-smi  3 GPU(s): 3× ${name}\n`);
  expect(r.code).toBe(1);
});

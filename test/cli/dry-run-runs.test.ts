// The dry run's commands, pasted into bash as a user would, really run: two tinymoe ranks on the CPU
// through the bootstrap, standalone (a dry run has no rendezvous), each leaving a trace in which the
// plan's default hooks appear. This checks the plan against the real bootstrap and workload.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { beforeAll, expect, it } from 'vitest';
import { ensureBuilt, moeRun } from './cli.js';

beforeAll(() => ensureBuilt());

function bash(command: string, logPath: string): Promise<number | null> {
  return new Promise((done) => {
    const child = spawn('bash', ['-c', `exec >${logPath} 2>&1\n${command}`], { stdio: 'ignore' });
    child.on('exit', (code) => done(code));
  });
}

it('configs/tiny-cpu.yaml: the printed commands run both ranks to the end, hooks in the traces', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'moe-run-pasted-')), 'run');
  const r = moeRun(['--config', 'configs/tiny-cpu.yaml', '--dry-run', '--out', out]);
  expect(r.code).toBe(0);
  const commands = r.stdout.split('\n\n').filter((block) => block.includes('moe_run_bootstrap.py'));
  expect(commands).toHaveLength(2);
  commands.forEach((_, rank) => mkdirSync(join(out, `rank-${rank}`), { recursive: true }));

  const codes = await Promise.all(commands.map((c, rank) => bash(c, join(out, `rank-${rank}`, 'stdout.log'))));
  const log0 = readFileSync(join(out, 'rank-0', 'stdout.log'), 'utf8');
  expect(codes, log0).toEqual([0, 0]);
  expect(log0).toMatch(/Evaluated [\d,]+ tokens in [\d.]+s \([\d.]+ tokens\/s\)/);

  for (const rank of [0, 1]) {
    const dir = join(out, `rank-${rank}`);
    const trace = readdirSync(dir).find((f) => f.endsWith('.pt.trace.json.gz'));
    expect(trace, `rank ${rank} wrote no trace`).toBeDefined();
    const text = gunzipSync(readFileSync(join(dir, trace!))).toString('utf8');
    for (const label of ['TransformerDecoder', 'TransformerDecoderLayer with MoE', 'TransformerDecoderLayer without MoE', 'MultiheadAttention', 'MOELayer']) {
      expect(text, `rank ${rank}: ${label}`).toContain(`"${label}"`);
    }
  }
}, 300_000);

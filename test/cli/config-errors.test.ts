// A config mistake, through the real executable: one line on stderr that names the file, the line
// and the key, exit code 2, and no stack trace.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, moeRun, type CliResult } from './cli.js';

const dir = mkdtempSync(join(tmpdir(), 'moe-run-cli-'));
function configFile(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const TINY = `name: t
gpus: 2
workload:
  kind: tinymoe
  device: cpu
profile:
  activities: [cpu]
`;

function expectOneLineUserError(r: CliResult): string {
  expect(r.code).toBe(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^moe-run: /);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack frames
  expect(r.stdout).toBe('');
  return lines[0];
}

beforeAll(() => ensureBuilt());

describe('config errors through the CLI', () => {
  it('an unknown key names file, line and the closest allowed key', () => {
    const f = configFile('unknown.yaml', TINY.replace('  device: cpu\n', '  device: cpu\n  bach_size: 4\n'));
    const line = expectOneLineUserError(moeRun(['--config', f, '--dry-run']));
    expect(line).toContain(`${f}:6:`);
    expect(line).toContain('workload.bach_size');
    expect(line).toContain('did you mean "batch_size"');
  });

  it('a wrong type names what was expected and what was found', () => {
    const f = configFile('type.yaml', TINY.replace('gpus: 2', 'gpus: two'));
    const line = expectOneLineUserError(moeRun(['--config', f, '--dry-run']));
    expect(line).toContain(`${f}:2:`);
    expect(line).toMatch(/gpus: expected number, got "two"/);
  });

  it('a missing file', () => {
    const line = expectOneLineUserError(moeRun(['--config', join(dir, 'nope.yaml'), '--dry-run']));
    expect(line).toContain('nope.yaml');
    expect(line).toContain('no such file');
  });

  it('invalid YAML names the line', () => {
    const f = configFile('bad.yaml', 'name: t\nworkload:\n  kind: [tinymoe\n  device: cpu\n');
    const line = expectOneLineUserError(moeRun(['--config', f, '--dry-run']));
    expect(line).toMatch(new RegExp(`${f.replace(/[.]/g, '\\.')}:\\d+:\\d+: invalid YAML`));
  });

  it('a bad --set value names the flag', () => {
    const f = configFile('ok.yaml', TINY);
    const line = expectOneLineUserError(moeRun(['--config', f, '--set', 'workload.batch_size=many', '--dry-run']));
    expect(line).toContain('--set workload.batch_size=many');
    expect(line).toMatch(/expected number, got "many"/);
  });

  it('flag mistakes are user errors too', () => {
    const f = configFile('ok2.yaml', TINY);
    expectOneLineUserError(moeRun(['--config', f, '--gpu', '2', '--dry-run']));
    expect(expectOneLineUserError(moeRun(['--config', f, '--tee', '1', '--dry-run']))).toContain('tee');
    expect(expectOneLineUserError(moeRun(['--dry-run']))).toContain('--config FILE');
    expect(moeRun(['--config', f, '--tee', '0', '--dry-run']).code).toBe(0);
  });
});

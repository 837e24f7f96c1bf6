// Shared by the sampling tests: where the real nvidia-smi captures and the fake nvidia-smi are, the
// query-gpu sections of a capture, and small waits on files and counters (never on wall-clock time).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { repoRoot } from '../../src/plan/repo.js';

export { repoRoot };
export const SHARED_CAPTURES = join(repoRoot, '..', 'shared', 'nvidia-smi');
/** Other real captures, with their provenance in PROVENANCE.md (present only where they were added). */
export const EXTRA_CAPTURES = join(repoRoot, 'test', 'fixtures', 'nvidia-smi-extra');
export const FAKE_DIR = join(repoRoot, 'test', 'fixtures', 'fake-nvidia-smi');
/** PATH with the fake nvidia-smi first. */
export const PATH_WITH_FAKE = `${FAKE_DIR}${delimiter}${process.env.PATH ?? ''}`;

export function captureFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.txt')).sort().map((f) => join(dir, f)) : [];
}

/** The `… :: query-gpu (csv …)` sections of a capture: their phase (idle, load), header line and rows. */
export function querySections(file: string): { phase: string; header: string; rows: string[] }[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: { phase: string; header: string; rows: string[] }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^# (\S+) :: query-gpu \(csv/.exec(lines[i]);
    if (!m) continue;
    let j = i + 1;
    while (!/^#{20,}$/.test(lines[j])) j++; // past "# $ command" to the banner's closing line
    const body: string[] = [];
    for (j++; j < lines.length && lines[j].trim() !== '' && !lines[j].startsWith('#'); j++) body.push(lines[j]);
    out.push({ phase: m[1], header: body[0], rows: body.slice(1) });
  }
  return out;
}

/** The body of the capture section whose title matches (e.g. /capabilities :: list/). */
export function captureSection(file: string, title: RegExp): string[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const at = lines.findIndex((l) => l.startsWith('# ') && title.test(l));
  if (at < 0) return [];
  let j = at + 1;
  while (!/^#{20,}$/.test(lines[j])) j++;
  const body: string[] = [];
  for (j++; j < lines.length && !/^#{20,}$/.test(lines[j]); j++) body.push(lines[j]);
  while (body.length && body[body.length - 1].trim() === '') body.pop();
  return body;
}

/** A CSV written by the samplers (no quoted commas in what they write) as records. */
export async function readSamples(path: string): Promise<{ header: string[]; rows: Record<string, string>[] }> {
  const [head, ...lines] = (await readFile(path, 'utf8')).split('\n').filter(Boolean);
  const header = head.split(',');
  return { header, rows: lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [header[i], v]))) };
}

export async function lineCount(path: string): Promise<number> {
  return existsSync(path) ? (await readFile(path, 'utf8')).split('\n').filter(Boolean).length : 0;
}

/** Polls until `check` holds; fails with `what` after `limitMs` (a generous limit, not a measurement). */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, limitMs = 60_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A ns clock for the samplers' `now`. */
export const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

// The launcher's written record of a run: manifest.json (kept current from the first second, so a run
// that dies still says how far it got) and launcher.log (every line the launcher printed, and debug
// lines it did not).
import { closeSync, openSync, writeSync } from 'node:fs';
import { maskEnv, type RunPlan } from '../plan/index.js';
import type { LauncherEvent, Manifest, RankRecord } from '../run-dir.js';
import { RunDir } from '../run-dir.js';
import type { ReferenceClock } from './clock.js';

export class LauncherLog {
  private fd?: number;

  constructor(path: string) {
    // Synchronous appends: the log is short, and it must hold the last line before a crash.
    this.fd = openSync(path, 'a');
  }

  write(line: string): void {
    if (this.fd === undefined) return;
    writeSync(this.fd, `${new Date().toISOString()} ${line}\n`);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export class RunRecord {
  private saving: Promise<void> = Promise.resolve();

  constructor(readonly runDir: RunDir, readonly manifest: Manifest, private readonly clock: ReferenceClock) {}

  /** A launcher event on the reference clock (an instant on the timeline's "moe-run" process). */
  event(kind: LauncherEvent['kind'], fields: Omit<LauncherEvent, 't_ns' | 'kind'> & { t_ns?: string } = {}): void {
    this.manifest.events.push({ t_ns: fields.t_ns ?? this.clock.now(), kind, ...withoutUndefined(fields) });
  }

  note(text: string): void {
    if (!this.manifest.notes.includes(text)) this.manifest.notes.push(text);
  }

  stageStart(name: string): void {
    this.manifest.timings[name] = { start_ns: this.clock.now() };
  }

  stageEnd(name: string): void {
    const t = this.manifest.timings[name];
    if (t !== undefined) t.end_ns = this.clock.now();
  }

  /** Writes the manifest; writes are queued so that two saves never interleave their renames. */
  save(): Promise<void> {
    const snapshot = JSON.parse(JSON.stringify(this.manifest)) as Manifest;
    const write = this.saving.catch(() => {}).then(() => this.runDir.writeManifest(snapshot));
    this.saving = write;
    return write;
  }

  /** A save while the ranks run (after an event): a failure is logged, the next save tries again. */
  saveSoon(log: (line: string) => void): void {
    this.save().catch((err: unknown) => log(`could not write manifest.json: ${err instanceof Error ? err.message : String(err)}`));
  }
}

/** A planned rank as the manifest records it before it starts (its secrets masked). */
export function rankRecord(r: RunPlan['ranks'][number], host: string): RankRecord {
  return {
    rank: r.rank, local_rank: r.localRank, node_rank: r.nodeRank, host, device: r.device,
    argv: r.argv, env: maskEnv(r.env), cwd: r.cwd, status: 'not-started',
  };
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

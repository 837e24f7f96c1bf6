// Starts the ranks of this node and supervises them as a gang (DESIGN.md, issue 2 item 6): each rank in
// its own process group, its output to rank-R/stdout.log and stderr.log (and to the console per --tee),
// and the first rank to fail stops all the others: SIGTERM to every group, a grace period, then SIGKILL.
// Whatever happens, moe-run leaves no process behind: every group is killed once its leader has exited,
// and a synchronous 'exit' handler kills the groups still alive if moe-run itself goes down.
import { EventEmitter } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { constants } from 'node:os';
import type { Readable } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import type { RankPlan } from '../plan/types.js';
import type { ReferenceClock } from './clock.js';

export type Tee = 'all' | '0' | 'none';

/** How one rank ended. */
export interface RankExit {
  rank: number;
  pid?: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** the program could not be started at all (not found, not executable…) */
  spawnError?: string;
  startedNs?: string;
  endedNs: string;
  /** killed by moe-run while stopping the gang (another rank failed, a timeout, a signal to moe-run) */
  stopped: boolean;
  /** the last lines of its stderr */
  stderrTail: string[];
}

/** Why the run is being stopped; the first one recorded is the run's root cause. */
export interface Failure {
  kind: 'rank' | 'timeout' | 'lost' | 'signal' | 'error';
  reason: string;
  /** what moe-run exits with */
  exitCode: number;
  rank?: number;
  node?: number;
  pid?: number;
  rankExitCode?: number | null;
  signal?: string | null;
  stderrTail?: string[];
}

export interface SupervisorOptions {
  ranks: RankPlan[];
  /** SIGTERM → SIGKILL grace period (launch.grace_s) */
  graceS: number;
  tee: Tee;
  clock: ReferenceClock;
  /** a line of rank output for the console, already prefixed "[rank R] " */
  out: (stream: 'stdout' | 'stderr', line: string) => void;
  /** launcher.log */
  log: (line: string) => void;
  /** whether the rank reached the rendezvous; a rank that did not is reported as dying before connecting */
  connected?: (rank: number) => boolean;
}

export interface SupervisorEvents {
  spawn: [rank: number, pid: number, tNs: string];
  exit: [exit: RankExit];
  failure: [failure: Failure];
}

/** The signals a launcher (node 0's or an agent) passes on to its ranks (Supervisor.signal). */
export const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];

const TAIL_LINES = 20;
const EXPECT_EXIT_GRACE_PERIODS = 3;
const MAX_CONSOLE_LINE = 4096;

interface Running {
  plan: RankPlan;
  subprocess?: ResultPromise;
  pid?: number;
  startedNs?: string;
  exited: boolean;
  stopping: boolean;
  stdout: RankStream;
  stderr: RankStream;
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  /** the root cause, once something failed */
  failure?: Failure;
  private readonly running: Running[];
  private killTimer?: NodeJS.Timeout;
  private interrupts = 0;
  private readonly killOnExit = () => this.killAll();

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.running = opts.ranks.map((plan) => {
      const teed = opts.tee === 'all' || (opts.tee === '0' && plan.rank === 0);
      const prefix = `[rank ${plan.rank}] `;
      return {
        plan,
        exited: false,
        stopping: false,
        stdout: new RankStream(plan.stdoutPath, teed ? (l) => opts.out('stdout', prefix + l) : undefined),
        stderr: new RankStream(plan.stderrPath, teed ? (l) => opts.out('stderr', prefix + l) : undefined),
      };
    });
  }

  /** Spawns every rank and resolves once all have ended and their output is on disk. */
  async run(): Promise<RankExit[]> {
    process.on('exit', this.killOnExit);
    try {
      return await Promise.all(this.running.map((r) => this.runRank(r)));
    } finally {
      clearTimeout(this.killTimer);
      process.off('exit', this.killOnExit);
      this.killAll();
    }
  }

  /** Records the root cause (the first call wins) and stops every rank still running with `sig`. */
  fail(failure: Failure, sig: NodeJS.Signals = 'SIGTERM'): void {
    if (this.failure === undefined) {
      this.failure = failure;
      this.opts.log(`stopping all ranks: ${failure.reason}`);
      this.emit('failure', failure);
    }
    this.stop(sig);
  }

  /**
   * A signal to moe-run. SIGUSR1/SIGUSR2 (Slurm's warnings) are passed on and the run goes on; SIGINT,
   * SIGTERM and SIGHUP are passed on and stop the run, and a second SIGINT kills every rank at once.
   */
  signal(sig: NodeJS.Signals): void {
    this.opts.log(`received ${sig}: forwarding it to every rank`);
    if (sig === 'SIGUSR1' || sig === 'SIGUSR2') {
      for (const r of this.running) this.killGroup(r, sig);
      return;
    }
    if (sig === 'SIGINT' && ++this.interrupts > 1) {
      this.opts.log('second SIGINT: killing every rank now');
      this.killAll();
      return;
    }
    this.fail({ kind: 'signal', reason: `interrupted by ${sig}`, exitCode: signalExitCode(sig), signal: sig }, sig);
  }

  /**
   * The rank said it failed, or let go of the rendezvous, so it should be exiting: if it is still running
   * well after that (a hung teardown, e.g. NCCL's after an exception), that is the failure. "Well after":
   * a few grace periods, because tearing down a Python with torch loaded takes seconds on a busy machine,
   * and the rank's own exit status is the better root cause whenever it comes.
   */
  expectExit(rank: number, why: string): void {
    const r = this.running.find((x) => x.plan.rank === rank);
    if (r === undefined || r.exited) return;
    const waitS = Number((EXPECT_EXIT_GRACE_PERIODS * this.opts.graceS).toFixed(1));
    const timer = setTimeout(() => {
      if (r.exited || r.stopping) return;
      this.fail({ kind: 'rank', rank, pid: r.pid, reason: `rank ${rank} ${why} but was still running ${waitS} s later`, exitCode: 1, stderrTail: r.stderr.tail() });
    }, waitS * 1000);
    timer.unref();
  }

  /** SIGKILL to every rank's group, synchronously (also from the process 'exit' handler). */
  killAll(): void {
    for (const r of this.running) {
      if (!r.exited) r.stopping = true;
      this.killGroup(r, 'SIGKILL');
    }
  }

  /** `sig` to every running rank's group, and SIGKILL to those still there after the grace period. */
  private stop(sig: NodeJS.Signals): void {
    for (const r of this.running) {
      if (r.exited || r.stopping) continue;
      r.stopping = true;
      this.killGroup(r, sig);
    }
    this.killTimer ??= setTimeout(() => {
      const left = this.running.filter((r) => !r.exited);
      if (left.length === 0) return;
      this.opts.log(`ranks ${left.map((r) => r.plan.rank).join(', ')} still running after ${this.opts.graceS} s: SIGKILL`);
      this.killAll();
    }, this.opts.graceS * 1000);
  }

  private killGroup(r: Running, sig: NodeJS.Signals): void {
    if (r.pid === undefined) return;
    try {
      // Negative pid: the whole process group the rank leads (it was spawned detached).
      process.kill(-r.pid, sig);
    } catch {
      // ESRCH: the group is gone already
    }
  }

  private async runRank(r: Running): Promise<RankExit> {
    const { plan } = r;
    r.startedNs = this.opts.clock.now();
    const subprocess = execa(plan.argv[0], plan.argv.slice(1), {
      cwd: plan.cwd,
      env: plan.env,
      extendEnv: true,
      // Its own process group, so that a signal reaches the rank's children too, and a Ctrl-C at the
      // terminal reaches moe-run only, which decides what the ranks get.
      detached: true,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      cleanup: false,
      forceKillAfterDelay: false,
    });
    r.subprocess = subprocess;
    r.pid = subprocess.pid;
    if (r.pid !== undefined) {
      this.opts.log(`rank ${plan.rank}: started pid ${r.pid}: ${plan.argv.join(' ')}`);
      this.emit('spawn', plan.rank, r.pid, r.startedNs);
      // A failure recorded while this rank was being spawned must stop it too.
      if (this.failure !== undefined) {
        r.stopping = true;
        this.killGroup(r, 'SIGTERM');
      }
    }
    const outputs = [r.stdout.drain(subprocess.stdout), r.stderr.drain(subprocess.stderr)];
    // The leader's own exit, not the end of its pipes: a leftover child holding them open must not
    // keep the run waiting (the group kill below ends it).
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      subprocess.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const result = await Promise.race([exited, subprocess.then(() => null)]);
    const ended = result ?? { code: subprocess.exitCode, signal: subprocess.signalCode };
    r.exited = true;
    this.killGroup(r, 'SIGKILL');
    const settled = await subprocess;
    await Promise.all(outputs);
    const exit: RankExit = {
      rank: plan.rank,
      pid: r.pid,
      exitCode: ended.code,
      signal: ended.signal,
      spawnError: r.pid === undefined ? (settled.originalMessage || settled.shortMessage) : undefined,
      startedNs: r.pid === undefined ? undefined : r.startedNs,
      endedNs: this.opts.clock.now(),
      stopped: r.stopping,
      stderrTail: r.stderr.tail(),
    };
    this.opts.log(`rank ${plan.rank}: ${describeExit(exit)}`);
    this.emit('exit', exit);
    if (!exit.stopped && (exit.spawnError !== undefined || exit.exitCode !== 0)) this.fail(this.rankFailure(exit));
    return exit;
  }

  private rankFailure(exit: RankExit): Failure {
    const early = this.opts.connected !== undefined && !this.opts.connected(exit.rank);
    const how = describeExit(exit);
    return {
      kind: 'rank',
      reason: exit.spawnError !== undefined || !early ? `rank ${exit.rank} ${how}` : `rank ${exit.rank} exited before connecting to the rendezvous (${how})`,
      exitCode: exitCodeOf(exit),
      rank: exit.rank,
      pid: exit.pid,
      rankExitCode: exit.exitCode,
      signal: exit.signal,
      stderrTail: exit.stderrTail,
    };
  }
}

/** "exited with code 3", "was killed by SIGSEGV", "could not be started: …". */
export function describeExit(exit: RankExit): string {
  if (exit.spawnError !== undefined) return `could not be started: ${exit.spawnError}`;
  if (exit.signal !== null) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.exitCode}`;
}

/** What moe-run exits with for this rank's end: its code, 128+N for signal N, 127 when it never started. */
export function exitCodeOf(exit: RankExit): number {
  if (exit.spawnError !== undefined) return 127;
  if (exit.signal !== null) return signalExitCode(exit.signal);
  return exit.exitCode ?? 1;
}

export function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (constants.signals[sig] ?? 0);
}

/** One output stream of a rank: raw to its log file, line by line to the console, its tail kept. */
class RankStream {
  private readonly file: WriteStream;
  private partial = '';
  private readonly last: string[] = [];

  constructor(path: string, private readonly tee?: (line: string) => void) {
    this.file = createWriteStream(path, { flags: 'a' });
  }

  async drain(stream: Readable | null): Promise<void> {
    if (stream !== null) {
      stream.setEncoding('utf8');
      for await (const chunk of stream as AsyncIterable<string>) {
        if (!this.file.write(chunk)) await new Promise<void>((resolve) => this.file.once('drain', () => resolve()));
        this.lines(chunk);
      }
    }
    if (this.partial !== '') this.line(this.partial);
    this.partial = '';
    await new Promise<void>((resolve, reject) => this.file.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }

  tail(): string[] {
    return [...this.last];
  }

  private lines(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop()!;
    // A progress bar without newlines must not grow without bound.
    if (this.partial.length > MAX_CONSOLE_LINE) {
      this.line(this.partial);
      this.partial = '';
    }
    for (const line of parts) this.line(line);
  }

  private line(raw: string): void {
    // Carriage-return redraws: only what the terminal would finally show.
    const line = raw.slice(raw.lastIndexOf('\r', raw.length - 2) + 1).replace(/\r$/, '').slice(0, MAX_CONSOLE_LINE);
    this.tee?.(line);
    this.last.push(line);
    if (this.last.length > TAIL_LINES) this.last.shift();
  }
}

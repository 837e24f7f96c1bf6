// The launch stage (DESIGN.md "The flow"): run directory and manifest → rendezvous → plan → samplers →
// ranks, supervised as a gang → samplers stopped → manifest completed → the post-run stages. launchRun
// is that sequence, in that order, in one function; everything it calls does one of the steps.
// The samplers are part of this stage (src/sample); the post-run stages (merge, analyze, report, pack)
// come after it in the flow, so the CLI hands them in (PostRunStage) rather than this module importing them.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import type { RunConfig } from '../config/schema.js';
import { UserError } from '../errors.js';
import { defaultRunDir, gatherFacts } from '../plan/facts.js';
import { planRun } from '../plan/index.js';
import { repoRoot } from '../plan/repo.js';
import { MANIFEST_SCHEMA_VERSION, RunDir, type Manifest } from '../run-dir.js';
import { collectHostInventory } from '../sample/index.js';
import { ReferenceClock } from './clock.js';
import { Progress, describe } from './progress.js';
import { LauncherLog, RunRecord, rankRecord } from './record.js';
import { runAgent } from './agent.js';
import { NodeZero } from './agents.js';
import { RendezvousServer } from './rendezvous.js';
import type { NodePlacement } from './slurm.js';
import { startRankSamplers, type SamplerContext, type Samplers } from './samplers.js';
import { FORWARDED_SIGNALS, Supervisor, describeExit, signalExitCode, type Failure, type RankExit, type Tee } from './supervisor.js';

/** A stage after the ranks have ended (merge, analyze, report, pack), reading the run directory only. */
export interface PostRunStage {
  name: string;
  /** also after a failed run (pack: ship the logs); default: only after a run that succeeded */
  alsoAfterFailure?: boolean;
  /** skip the stage when false (pack: only with --archive) */
  when?: (ctx: PostRunContext) => boolean;
  run(ctx: PostRunContext): Promise<void>;
}

export interface PostRunContext {
  runDir: RunDir;
  config: RunConfig;
  /** the run's exit status so far (the manifest on disk says the same) */
  ok: boolean;
  /** --archive, else output.archive */
  archive: boolean;
  /** a launcher message, printed and logged */
  say: (line: string) => void;
}

export interface LaunchOptions {
  config: RunConfig;
  /** where the config came from (a file path), for the manifest */
  configSource: string;
  outDir?: string;
  tee?: Tee;
  quiet?: boolean;
  archive?: boolean;
  /** moe-run's own command line, for the manifest */
  argv: string[];
  /** this node's place among several (src/launch/slurm.ts); absent or nnodes 1: a single node */
  placement?: NodePlacement;
  /** default: src/sample's samplers (startRankSamplers); tests and agents may give their own */
  startSamplers?: (ctx: SamplerContext) => Promise<Samplers>;
  /** merge, analyze, report, pack: plugged in by the CLI, run in this order */
  postRun?: PostRunStage[];
  /** console streams (tests give their own) */
  stdout?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

export { gpuIndices, type SamplerContext, type Samplers } from './samplers.js';

const BARRIER_TIMEOUT_EXIT = 1;

/** Runs one profiled launch on this node; resolves to moe-run's exit code. */
export async function launchRun(opts: LaunchOptions): Promise<number> {
  const { config } = opts;
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const clock = new ReferenceClock();
  const archive = opts.archive ?? config.output.archive;
  const tee: Tee = opts.quiet ? 'none' : opts.tee ?? config.launch.tee;
  // Several nodes: node 0 runs the sequence below with the other nodes' agents joined to it
  // (src/launch/agents.ts); every other node's launcher is such an agent (src/launch/agent.ts).
  const placement = opts.placement !== undefined && opts.placement.nnodes > 1 ? opts.placement : undefined;
  if (placement !== undefined && placement.nodeRank > 0) {
    return runAgent({
      config, placement, outDir: opts.outDir, tee,
      print: (line) => { if (!opts.quiet) stderr.write(line + '\n'); }, result: (line) => stderr.write(line + '\n'),
      startSamplers: opts.startSamplers,
    });
  }
  const nnodes = placement?.nnodes ?? 1;

  // ── 1. the run directory, config.yaml, launcher.log, and a manifest that says "running" ──
  const runDir = new RunDir(defaultRunDir(config, opts.outDir));
  if (runDir.isRunDir()) throw new UserError(`${runDir.root} already holds a run (manifest.json): give another --out`);
  await runDir.create();
  const log = new LauncherLog(runDir.launcherLog);
  const progress = new Progress({
    ranks: [...Array(config.gpus * nnodes).keys()], mode: Progress.modeFor(stderr, opts.quiet ?? false), err: stderr, out: stdout,
  });
  const say = (line: string) => {
    log.write(line);
    progress.note(line);
  };
  await writeFile(runDir.config, stringify(config));
  const record = new RunRecord(runDir, newManifest(opts, runDir, clock), clock);
  record.stageStart('run');
  record.stageStart('setup');
  await record.save();
  say(`moe-run: run directory ${runDir.root}`);

  let server: RendezvousServer | undefined;
  let zero: NodeZero | undefined;
  let supervisor: Supervisor | undefined;
  let samplers: Samplers | undefined;
  const removeSignalHandlers: Array<() => void> = [];
  // Signals go to the ranks once they run; one that would stop the run and comes before they start means
  // they are never started (a second Ctrl-C then leaves at once: nothing runs yet).
  let ranksStarted = false;
  let stopSignal: NodeJS.Signals | undefined;
  for (const sig of FORWARDED_SIGNALS) {
    const handler = () => {
      record.event('signal', { detail: sig });
      if (ranksStarted) return supervisor!.signal(sig);
      if (sig === 'SIGUSR1' || sig === 'SIGUSR2') return;
      if (stopSignal === 'SIGINT' && sig === 'SIGINT') process.exit(signalExitCode(sig));
      stopSignal ??= sig;
      say(`moe-run: ${sig} received: the ranks will not be started`);
    };
    process.on(sig, handler);
    removeSignalHandlers.push(() => process.off(sig, handler));
  }
  try {
    // ── 2. the rendezvous ──
    zero = placement && await NodeZero.prepare({ config, placement, runDir, log: (line) => log.write(line) });
    server = new RendezvousServer({
      worldSize: config.gpus * nnodes,
      barrierTimeoutS: config.rendezvous.timeout_s,
      bind: zero?.bind ?? config.rendezvous.bind ?? '127.0.0.1',
      port: zero?.port ?? config.rendezvous.port,
      token: zero?.token,
      welcome: zero?.welcome,
      clock,
      log: (line) => log.write(line),
    });
    const address = zero ? await zero.listen(server) : await server.listen();
    const rdzvHost = placement?.rdzv?.host ?? config.rendezvous.host;
    record.manifest.rendezvous = {
      host: rdzvHost, port: address.port, releases: server.releases, clock_offsets: server.clockOffsets,
      ...(zero ? { node_offsets: server.nodeOffsets } : {}),
    };
    record.manifest.nnodes = nnodes;
    record.manifest.world_size = config.gpus * nnodes;

    // ── 3. the plan: which processes, with which argv and environment ──
    const facts = await gatherFacts(config, {
      runDir: runDir.root,
      rendezvous: { host: rdzvHost, port: address.port, token: server.token },
      ...(zero ? { nnodes, nodeRank: 0, masterAddr: rdzvHost, masterPort: zero.masterPort, hostname: placement!.hostname } : {}),
    });
    const plan = planRun(config, facts);
    record.manifest.ranks = plan.ranks.map((r) => rankRecord(r, facts.hostname));
    for (const r of plan.ranks) await runDir.createRankDir(r.rank);
    // Taken while the ranks start (it imports torch, as they do), recorded when they have ended.
    const host = collectHostInventory(facts.python ?? 'python3').catch((err: unknown) => ({ error: String(err) }));
    say(`moe-run: ${plan.worldSize} rank(s), rendezvous on ${address.host}:${address.port}, torch.distributed on ${plan.masterAddr}:${plan.masterPort}`);

    // ── 4. what the ranks tell the rendezvous → progress, manifest, and failures ──
    supervisor = new Supervisor({
      ranks: plan.ranks,
      graceS: config.launch.grace_s,
      tee,
      clock,
      out: (stream, line) => progress.rankOutput(stream, line),
      log: (line) => log.write(line),
      connected: (rank) => server!.hasConnected(rank),
    });
    watch(server, supervisor, record, progress, say, log);
    if (zero) record.manifest.ranks.push(...zero.attach(server, supervisor, facts));

    // ── 5. samplers up, ranks run until every one has ended, samplers down ──
    const pids = new Map<number, number>();
    supervisor.on('spawn', (rank, pid) => pids.set(rank, pid));
    samplers = await (opts.startSamplers ?? startRankSamplers)({
      runDir, config, plan, clock, pids, log: (line) => log.write(line), note: (text) => record.note(text),
    });
    record.stageEnd('setup');
    record.stageStart('ranks');
    ranksStarted = true;
    // (from here on a signal goes to the ranks: stopSignal no longer changes)
    const interrupted: Failure | undefined = stopSignal === undefined ? undefined : {
      kind: 'signal', reason: `interrupted by ${stopSignal} before the ranks started`, exitCode: signalExitCode(stopSignal), signal: stopSignal,
    };
    const exits = interrupted === undefined ? await supervisor.run() : [];
    record.stageEnd('ranks');
    await samplers.stop();
    samplers = undefined;
    if (zero) {
      // interrupted before this node's ranks started: the other nodes' must not wait for them at the barrier
      if (interrupted !== undefined) supervisor.fail(interrupted);
      // the other nodes: done, their results taken in and their samples on this clock
      for (const text of await zero.finish(record.manifest.ranks, server.nodeOffsets, supervisor)) record.note(text);
    }

    // ── 6. the manifest says how it ended ──
    progress.stop();
    finish(record, exits, supervisor.failure ?? interrupted);
    recordHost(record, await host);
    record.stageEnd('run');
    await record.save();
    // The result is printed even with --quiet.
    const result = summarize(record.manifest, runDir.root, exits, tee);
    for (const line of result.lines) {
      log.write(line);
      (result.stream === 'stdout' ? stdout : stderr).write(line + '\n');
    }

    // ── 7. post-run stages (merge, analyze, report, pack), on the run directory alone ──
    let exitCode = record.manifest.exit_code ?? 1;
    for (const stage of opts.postRun ?? []) {
      const ctx: PostRunContext = { runDir, config, ok: exitCode === 0, archive, say };
      if (!(stage.alsoAfterFailure || ctx.ok) || stage.when?.(ctx) === false) continue;
      record.stageStart(stage.name);
      await record.save();
      let error: string | undefined;
      try {
        await stage.run(ctx);
      } catch (err) {
        error = err instanceof Error ? err.message : String(err);
        if (!(err instanceof UserError)) log.write(err instanceof Error ? err.stack ?? error : error);
      }
      record.stageEnd(stage.name);
      if (error !== undefined) {
        // The ranks' work is kept; the stage can be redone offline (moe-run merge/report/pack DIR).
        say(`moe-run: ${stage.name} failed: ${error}`);
        record.note(`${stage.name} failed: ${error}`);
        if (exitCode === 0) exitCode = 1;
        record.manifest.exit_code = exitCode;
      }
      await record.save();
    }
    return exitCode;
  } catch (err) {
    // A launcher error (a busy port, a bug): the manifest says so, and no rank outlives moe-run.
    supervisor?.killAll();
    record.manifest.status = 'failed';
    record.manifest.exit_code = err instanceof UserError ? err.exitCode : 1;
    record.manifest.failure = { reason: `moe-run: ${err instanceof Error ? err.message : String(err)}` };
    record.event('failure', { detail: record.manifest.failure.reason });
    log.write(err instanceof Error ? err.stack ?? err.message : String(err));
    await record.save();
    throw err;
  } finally {
    for (const remove of removeSignalHandlers) remove();
    await samplers?.stop();
    progress.stop();
    await server?.close();
    await zero?.close();
    log.close();
  }
}

/** Rendezvous and supervisor events → the progress display, the manifest's events, and failures. */
function watch(server: RendezvousServer, supervisor: Supervisor, record: RunRecord, progress: Progress, say: (line: string) => void, log: LauncherLog): void {
  server.on('connect', (peer, tNs) => {
    for (const rank of peer.ranks) record.event('connect', { t_ns: tNs, rank, node: peer.node, detail: `pid ${peer.pid} on ${peer.host}` });
  });
  server.on('status', (rank, status) => {
    log.write(`rank ${rank} ${describe(status)}`);
    progress.update(rank, status);
    if (status.state === 'failed') supervisor.expectExit(rank, `reported a failure (${status.detail ?? 'no detail'})`);
  });
  server.on('clock', (peer, offsetNs, rttNs) => log.write(`rendezvous: rank ${peer.ranks.join(',')} clock offset ${offsetNs} ns (round trip ${rttNs} ns)`));
  // A rank that exited 0 without entering a barrier the others wait at would leave them there until the
  // timeout (half an hour by default): that is a failure now, whichever of the two comes first.
  const ended = new Set<number>();
  const checkStranded = () => {
    for (const barrier of server.openBarriers()) {
      const gone = [...ended].filter((r) => !barrier.entered.includes(r));
      if (gone.length === 0) continue;
      supervisor.fail({
        kind: 'rank', rank: gone[0], exitCode: 1,
        reason: `rank ${gone[0]} exited 0 without entering barrier ${barrier.name}, where ${barrier.entered.length === 1 ? 'rank' : 'ranks'} [${barrier.entered.join(', ')}] ${barrier.entered.length === 1 ? 'waits' : 'wait'}`,
      });
      return;
    }
  };
  server.on('barrier-enter', (name, ranks) => {
    for (const rank of ranks) progress.update(rank, { state: 'waiting', detail: `barrier ${name}` });
    checkStranded();
  });
  server.on('release', (name, tNs) => {
    record.event('barrier-release', { t_ns: tNs, detail: name });
    say(`moe-run: barrier ${name} released`);
    record.saveSoon((line) => log.write(line));
  });
  server.on('barrier-timeout', (name, missing, reason, tNs) => {
    record.event('barrier-timeout', { t_ns: tNs, detail: reason });
    supervisor.fail({ kind: 'timeout', reason, exitCode: BARRIER_TIMEOUT_EXIT });
  });
  server.on('lost', (peer, tNs) => {
    // Its own exit normally follows within moments and is what stops the run; this says when it let go.
    for (const rank of peer.ranks) {
      record.event('note', { t_ns: tNs, rank, detail: 'closed its rendezvous connection before it was done' });
      if (peer.role === 'rank') supervisor.expectExit(rank, 'closed its rendezvous connection before it was done');
    }
  });
  server.on('rejected', (remote, reason) => log.write(`rendezvous: refused ${remote}: ${reason}`));
  supervisor.on('spawn', (rank, pid, tNs) => {
    record.event('spawn', { t_ns: tNs, rank, detail: `pid ${pid}` });
    const r = record.manifest.ranks.find((x) => x.rank === rank);
    if (r !== undefined) Object.assign(r, { pid, started_ns: tNs, status: 'running' });
    record.saveSoon((line) => log.write(line));
  });
  supervisor.on('exit', (exit) => {
    record.event('exit', { t_ns: exit.endedNs, rank: exit.rank, detail: describeExit(exit) });
    // (a rank that failed is the run's failure already)
    if (exit.exitCode === 0 && exit.spawnError === undefined) {
      ended.add(exit.rank);
      checkStranded();
    }
    progress.update(exit.rank, { state: exit.stopped ? 'stopped' : exit.exitCode === 0 && exit.spawnError === undefined ? 'done' : 'failed', detail: exit.exitCode === 0 ? undefined : describeExit(exit) });
  });
  supervisor.on('failure', (failure) => {
    // Ranks blocked at a barrier hear it from the rendezvous as well as by signal.
    server.abort(failure.reason);
    record.event('failure', { rank: failure.rank, node: failure.node, detail: failure.reason });
    say(`moe-run: stopping the run: ${failure.reason}`);
    record.saveSoon((line) => log.write(line));
  });
}

function newManifest(opts: LaunchOptions, runDir: RunDir, clock: ReferenceClock): Manifest {
  const { config } = opts;
  return {
    schema: MANIFEST_SCHEMA_VERSION,
    name: config.name,
    run_id: basename(runDir.root),
    created: new Date(Number(clock.nowNs() / 1_000_000n)).toISOString(),
    moe_run_version: packageVersion(),
    command: opts.argv,
    config_source: opts.configSource,
    config,
    nnodes: 1,
    world_size: config.gpus,
    ranks: [],
    versions: { node: process.version },
    timings: {},
    status: 'running',
    notes: [],
    events: [],
  };
}

/** Each rank's end, the run's status and exit code, and the root cause of a failure. */
function finish(record: RunRecord, exits: RankExit[], failure: Failure | undefined): void {
  const m = record.manifest;
  for (const exit of exits) {
    const r = m.ranks.find((x) => x.rank === exit.rank);
    if (r === undefined) continue;
    r.pid = exit.pid;
    r.started_ns = exit.startedNs;
    r.ended_ns = exit.endedNs;
    r.exit_code = exit.exitCode;
    r.signal = exit.signal;
    r.status = exit.spawnError !== undefined ? 'not-started'
      : exit.exitCode === 0 ? 'ok' : exit.stopped ? 'stopped' : 'failed';
    r.reason = exit.exitCode === 0 ? undefined : describeExit(exit);
  }
  if (failure === undefined) {
    m.status = 'ok';
    m.exit_code = 0;
    return;
  }
  m.status = failure.kind === 'signal' ? 'interrupted' : 'failed';
  m.exit_code = failure.exitCode;
  m.failure = {
    rank: failure.rank, node: failure.node, exit_code: failure.rankExitCode, signal: failure.signal,
    pid: failure.pid, reason: failure.reason, stderr_tail: failure.stderrTail,
  };
}

/** The result: one line on success; on failure the root cause with its stderr, and the others' tails. */
function summarize(m: Manifest, root: string, exits: RankExit[], tee: Tee): { stream: 'stdout' | 'stderr'; lines: string[] } {
  if (m.status === 'ok') {
    const t = m.timings.ranks;
    const seconds = t?.end_ns === undefined ? '?' : (Number(BigInt(t.end_ns) - BigInt(t.start_ns)) / 1e9).toFixed(1);
    return { stream: 'stdout', lines: [`moe-run: ok: ${m.world_size} rank(s) exited 0 in ${seconds} s; run directory ${root}`] };
  }
  const f = m.failure!;
  const lines = [`moe-run: run ${m.status}: ${f.reason}`];
  if (f.rank !== undefined) {
    lines.push(`  root cause: rank ${f.rank}${f.pid !== undefined ? ` (pid ${f.pid})` : ''}, ` +
      (f.signal ? `signal ${f.signal}` : `exit code ${f.exit_code}`));
    if (f.stderr_tail?.length) lines.push('  last lines of its stderr:', ...f.stderr_tail.map((l) => `    | ${l}`));
  }
  // Every other rank's last words, unless they were on the console already.
  for (const exit of exits) {
    if (exit.rank === f.rank) continue;
    const teed = tee === 'all' || (tee === '0' && exit.rank === 0);
    const tail = teed ? [] : exit.stderrTail.slice(-5);
    lines.push(`  rank ${exit.rank} ${describeExit(exit)}${tail.length > 0 ? '; its stderr ends:' : ''}`, ...tail.map((l) => `    | ${l}`));
  }
  lines.push(`  run directory: ${root} (manifest.json, launcher.log, rank-*/stderr.log)`);
  return { stream: 'stderr', lines };
}

/** The host inventory into the manifest: its versions (python, torch) into `versions`, its notes into `notes`. */
function recordHost(record: RunRecord, host: Record<string, unknown>): void {
  const { versions, notes, ...rest } = host as { versions?: Record<string, string>; notes?: string[]; error?: string };
  record.manifest.host = rest;
  record.manifest.versions = { ...record.manifest.versions, ...versions };
  for (const text of notes ?? []) record.note(text);
  if (rest.error !== undefined) record.note(`host inventory failed: ${rest.error}`);
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

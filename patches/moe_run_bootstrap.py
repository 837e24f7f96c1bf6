#!/usr/bin/env python3
"""moe-run's rank bootstrap: starts one rank of a workload under moe-run's patches.

    python moe_run_bootstrap.py --entry MODULE:FUNC [--] ARGS...   import MODULE, call FUNC()
    python moe_run_bootstrap.py -m MODULE [--] ARGS...             run MODULE as __main__
    python moe_run_bootstrap.py [--] SCRIPT ARGS...                run SCRIPT as __main__
In every case the workload sees ``sys.argv = [MODULE or SCRIPT, ARGS...]``.

What it does (docs/contracts.md has the environment and the wire protocol):
  1. with MOE_RUN_RDZV set: connect, hello with MOE_RUN_TOKEN, clock sync, status "starting";
     without it the rank runs standalone (no barrier, clock offset 0) and still profiles and exports,
     so a command line printed by `moe-run --dry-run` can be run by hand;
  2. registers the patches of MOE_RUN_PROFILE (module hooks, region, step), applied as their modules load;
  3. runs the workload; the region's entry waits at barrier "start", profiles, exports into
     MOE_RUN_RANK_DIR and waits at barrier "end" (moe_run/region.py);
  4. at the end rewrites rank.json with the throughput and perplexity the workload printed; on an
     exception writes error.json and reports "failed". The workload's exit status is kept; a rank
     stopped by the launcher's ``abort`` exits with 143, as SIGTERM would have it.
Python standard library and torch only; torch 1.13 (legacy profiler) and 2.x (Kineto).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from moe_run.clock import seconds_between, wall_ns  # noqa: E402  (stdlib only: read the clock first)

STARTED_NS = wall_ns()

import socket  # noqa: E402
import traceback  # noqa: E402

from moe_run.settings import read_settings  # noqa: E402
from moe_run.summary import LineTee, Summary  # noqa: E402

USAGE = "usage: moe_run_bootstrap.py (--entry MODULE:FUNC | -m MODULE | SCRIPT) [--] ARGS..."
ABORTED_EXIT_CODE = 143


def usage_error(problem: str = "") -> None:
    print(f"moe_run_bootstrap.py: {problem}\n{USAGE}" if problem else USAGE, file=sys.stderr)
    sys.exit(2)


def parse_cli(argv):
    """-> (kind, target, args) with kind "entry", "module" or "script"."""
    if argv[:1] == ["--entry"] and len(argv) >= 2:
        kind, target, rest = "entry", argv[1], argv[2:]
        if ":" not in target:
            usage_error(f"--entry {target!r}: expected MODULE:FUNC")
    elif argv[:1] == ["-m"] and len(argv) >= 2:
        kind, target, rest = "module", argv[1], argv[2:]
    else:
        rest = argv[1:] if argv[:1] == ["--"] else argv
        if not rest or rest[0].startswith("-"):
            usage_error()
        return "script", rest[0], rest[1:]
    return kind, target, rest[1:] if rest[:1] == ["--"] else rest


def steps_hint(args):
    """How many steps to announce in the progress display: eval_lm's --max-valid-steps if given."""
    for i, arg in enumerate(args):
        if arg == "--max-valid-steps" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--max-valid-steps="):
            value = arg.partition("=")[2]
        else:
            continue
        return int(value) if value.isdigit() else None
    return None


def exit_status(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def on_lost(reason: str) -> None:
    """Called from the rendezvous reader thread: the launcher aborts the run or is gone."""
    try:
        sys.stderr.write(f"moe-run: {reason}; exiting\n")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(ABORTED_EXIT_CODE)


def connect(run, settings) -> None:
    """Join the rendezvous: hello with the token, status "starting", clock sync."""
    from moe_run.rendezvous import RendezvousClient

    connect_ns = wall_ns()
    rdzv = RendezvousClient(settings.rdzv, settings.token, on_lost)
    rdzv.hello(settings.rank, os.getpid(), socket.gethostname())
    run.rdzv = rdzv
    rdzv.status("starting")
    run.clock_offset_ns, run.clock_rtt_ns = rdzv.sync_clock()
    run.stages["connect"] = seconds_between(connect_ns, wall_ns())


def register_patches(run, settings, patcher) -> None:
    from moe_run.profiling import labelled_forward

    profile = settings.profile
    if run.profiling:  # hooks only matter to the profiler; off, the workload runs as is
        for hook in settings.hooks:
            patcher.add(hook.target + ".forward", labelled_forward(hook.label, hook.moe_suffix))
    if profile.get("region"):
        patcher.add(profile["region"], run.wrap_region)
    if profile.get("step"):
        patcher.add(profile["step"], run.wrap_step)
    patcher.install()


def main() -> int:
    kind, target, args = parse_cli(sys.argv[1:])
    settings = read_settings()
    os.makedirs(settings.rank_dir, exist_ok=True)
    summary = Summary()
    sys.stdout = LineTee(sys.stdout, summary)
    sys.stderr = LineTee(sys.stderr, summary)

    # torch is imported from here on (the workload needs it anyway)
    from moe_run.entry import run_entry
    from moe_run.patching import Patcher
    from moe_run.rankfiles import write_error
    from moe_run.region import RankRun
    from moe_run.rendezvous import NoRendezvous

    run = RankRun(settings, NoRendezvous(), summary, steps_hint(args))
    patcher = Patcher()
    region = settings.profile.get("region")

    def workload():
        run_entry(kind, target, args, patcher)

    status, failure = 0, None
    try:
        if settings.rdzv:
            connect(run, settings)
        register_patches(run, settings, patcher)
        run.rdzv.status("loading")
        run.bootstrap_end_ns = wall_ns()
        run.stages["bootstrap"] = seconds_between(STARTED_NS, run.bootstrap_end_ns)
        # without a region, the whole workload is the region
        (workload if region else run.wrap_region(workload))()
    except SystemExit as e:
        status = exit_status(e)
        failure = e if status != 0 else None
    except KeyboardInterrupt as e:  # SIGINT, forwarded by moe-run
        status, failure = 130, e
    except BaseException as e:  # noqa: BLE001 - every failure is reported, then the exit status says it
        traceback.print_exc()
        status, failure = 1, e

    if region and not run.region_done and failure is None:
        run.notes.append(f"the region {region} was never entered")
    for missing in patcher.unapplied():
        run.notes.append(f"not patched (its module was never imported): {missing}")
    run.write_rank_json()
    if failure is not None:
        write_error(settings.rank_dir, failure, wall_ns())
        run.rdzv.status("failed", detail=f"{type(failure).__name__}: {failure}")
    else:
        run.rdzv.status("done")
    run.rdzv.close()
    sys.stdout.flush()
    sys.stderr.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())

"""The rank side of moe-run: what patches/moe_run_bootstrap.py puts around a workload.

One job per module:
    clock        the wall clock every anchor is read from (with the test-only skew)
    settings     the environment contract (docs/contracts.md) parsed once
    rendezvous   the TCP client: hello, clock sync, status, barriers, abort
    patching     import hook that patches classes/functions by name when their module loads
    profiling    the torch profiler around the region: start, marker, steps, stop
    export       trace (gzip), marker lookup, ops.json and the profiler's tables
    region       what happens at the region's entry and exit, and at each step
    summary      the tee that picks fairseq's summary lines out of stdout/stderr
    rankfiles    rank.json and error.json
    entry        running the workload: --entry MODULE:FUNC, -m MODULE or a script
"""

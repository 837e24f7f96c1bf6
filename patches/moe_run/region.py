"""One rank's run around its workload: the profiled region, its steps, and rank.json.

Region entry: status "waiting" -> profiler on -> barrier "start" (every rank released together; the
release's local and reference times are anchors) -> the moe_run/start marker, on every rank at the
same reference time (release + MARKER_DELAY_NS) -> status "profiling". Region exit: profiler off
-> export (status "exporting") -> rank.json -> barrier "end". With ``profile.enabled: false`` the same
path runs without the profiler, so that the two runs compare (profiler dilation).
A region entered again (fairseq evaluating a second subset) runs plainly: one profile per rank.
"""
import contextlib
import os
import socket
import time
from typing import List, Optional

import torch
from torch.autograd.profiler import record_function

from moe_run.clock import seconds_between, wall_ns
from moe_run.profiling import ProfilerSession, trace_format
from moe_run.rankfiles import write_json

# The marker is recorded this long after the start release, on the reference clock: longer than the
# release takes to reach every rank, short next to any region worth profiling.
MARKER_DELAY_NS = 50_000_000
# After its marker a rank sleeps this long, handing its core to a rank that woke for its own marker at
# the same moment and is still waiting for one (more ranks than cores); else that rank waits until the
# ones that marked first, busy with the region by then, are preempted: a scheduler slice, ms.
YIELD_AFTER_MARKER_S = 0.001
BARRIER_RANGE = "moe_run/barrier_start"


class RankRun:
    def __init__(self, settings, rdzv, summary, steps_hint: Optional[int]):
        self.settings = settings
        self.rdzv = rdzv
        self.summary = summary
        self.steps_hint = steps_hint
        self.clock_offset_ns = 0
        self.clock_rtt_ns = 0
        self.stages = {}
        self.anchors = {}
        self.notes: List[str] = []
        self.steps = 0
        self.session: Optional[ProfilerSession] = None
        self.bootstrap_end_ns: Optional[int] = None
        self.in_region = False
        self.region_done = False
        self._region_start_ns = 0

    @property
    def profiling(self) -> bool:
        return bool(self.settings.profile.get("enabled", True))

    # -- the region ----------------------------------------------------------------------------
    def enter_region(self) -> None:
        entry_ns = wall_ns()
        self.in_region = True
        if self.bootstrap_end_ns is not None:
            self.stages["load"] = seconds_between(self.bootstrap_end_ns, entry_ns)
        self.rdzv.status("waiting", detail="barrier start")
        if self.profiling:
            # Started before the barrier: starting a profiler takes milliseconds, differently long on
            # each rank, and the marker after the release must not wait for it.
            self.session = ProfilerSession(self.settings.profile, self.settings.rank, self.settings.rank_dir,
                                           on_export_start=lambda: self.rdzv.status("exporting"))
            self.session.start()
            self.anchors["profiler_start_local_ns"] = str(self.session.profiler_start_local_ns)
        barrier_ns = wall_ns()
        # The wait shows in the trace as its own range; opening it also warms up record_function,
        # whose first call is slow (ms), before the marker needs it to be quick.
        with record_function(BARRIER_RANGE) if self.session is not None else contextlib.nullcontext():
            release_local, release_ref = self.rdzv.barrier("start")
        if self.session is not None:
            if release_ref is not None and self.session.recording():
                self._mark_at_reference(int(release_ref) + MARKER_DELAY_NS)
            else:
                self.session.mark_if_recording()
        self.anchors["barrier_release_local_ns"] = str(release_local)
        if release_ref is not None:
            self.anchors["barrier_release_ref_ns"] = str(release_ref)
        self.stages["barrier_wait"] = seconds_between(barrier_ns, release_local)
        self._region_start_ns = wall_ns()
        self.rdzv.status("profiling", step=0, steps=self.steps_hint,
                         detail=None if self.profiling else "profiler off")

    def _mark_at_reference(self, target_ref_ns: int) -> None:
        """Record the marker when the reference clock reads ``target_ref_ns`` (through this rank's offset).

        Every rank records its marker at the same reference time, so that the markers line up to the
        clock sync's error (tens of µs) rather than to how late each rank heard of the release (ms on
        a busy machine). The rank sleeps until then rather than spinning: spinning ranks preempt one
        another when there are more ranks than cores, and one that is off its core at the marker's
        time is late by a scheduler slice, while a sleeper that wakes is run promptly."""
        deadline = target_ref_ns - self.clock_offset_ns
        remaining = deadline - wall_ns()
        if remaining <= 0:
            self.notes.append(f"the start release arrived {-remaining / 1e6:.1f} ms after the marker's "
                              "time: this rank's marker is late by that much")
        while remaining > 0:  # time.sleep keeps another clock than wall_ns (monotonic) and may round
            time.sleep(remaining / 1e9)
            remaining = deadline - wall_ns()
        self.session.mark_if_recording()
        time.sleep(YIELD_AFTER_MARKER_S)

    def step_done(self) -> None:
        self.steps += 1
        if self.session is not None:
            self.session.step()
        self.rdzv.status("profiling", step=self.steps, steps=self.steps_hint)

    def exit_region(self) -> None:
        end_ns = wall_ns()
        self.stages["region"] = seconds_between(self._region_start_ns, end_ns)
        self.in_region, self.region_done = False, True
        if self.session is not None:
            self.session.stop()
            self.stages["export"] = round(self.session.export_seconds, 6)
        self.write_rank_json()
        self.rdzv.barrier("end")
        self.rdzv.finished()

    def fail_region(self) -> None:
        """The region raised: stop the profiler without exporting (the run is failing; the others
        are about to be stopped), keep what is known in rank.json."""
        self.in_region, self.region_done = False, True
        self.stages["region"] = seconds_between(self._region_start_ns or wall_ns(), wall_ns())
        if self.session is not None:
            try:
                self.session.abandon()
            except Exception as e:  # the failure being reported matters more than this one
                self.notes.append(f"stopping the profiler after the failure failed: {e}")

    def wrap_region(self, original):
        def region(*args, **kwargs):
            if self.in_region or self.region_done:
                return original(*args, **kwargs)
            self.enter_region()
            try:
                result = original(*args, **kwargs)
            except BaseException:
                self.fail_region()
                raise
            self.exit_region()
            return result
        return region

    def wrap_step(self, original):
        def step(*args, **kwargs):
            result = original(*args, **kwargs)
            if self.in_region:
                self.step_done()
            return result
        return step

    # -- rank.json ------------------------------------------------------------------------------
    def rank_info(self) -> dict:
        session = self.session
        anchors = dict(self.anchors)
        if session is not None and session.marker_local_ns is not None and session.marker_trace_us is not None:
            anchors["start_marker_local_ns"] = str(session.marker_local_ns)
            anchors["start_marker_trace_us"] = session.marker_trace_us
        info = {
            "rank": self.settings.rank,
            "world_size": self.settings.world_size,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "torch_version": torch.__version__,
            "trace_format": trace_format() if session is not None and session.trace_file else None,
            "trace_file": session.trace_file if session is not None else None,
            "profiled": bool(session is not None and session.trace_file),
            "clock_offset_ns": str(self.clock_offset_ns),
            "clock_rtt_ns": str(self.clock_rtt_ns),
            "anchors": anchors,
            "stages": dict(self.stages),
            "steps": self.steps,
        }
        if self.summary.throughput is not None:
            info["throughput"] = self.summary.throughput
        if self.summary.loss is not None:
            info["loss"] = self.summary.loss
            info["perplexity"] = self.summary.perplexity
        notes = self.notes + (session.notes if session is not None else [])
        if notes:
            info["notes"] = notes
        return info

    def write_rank_json(self) -> None:
        os.makedirs(self.settings.rank_dir, exist_ok=True)
        write_json(os.path.join(self.settings.rank_dir, "rank.json"), self.rank_info())

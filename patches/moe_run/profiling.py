"""The torch profiler around the region: start, the moe_run/start marker, steps, stop and export.

The merge maps trace time to wall time through one point known in both: the ``moe_run/start``
range, recorded just after the start barrier releases (region.py). Its ``ts`` is read back from the exported trace; its wall time is taken here, as the middle
of the readings just before and just after the range is opened (the range's own timestamp lies
between them; the two are microseconds apart).

With a schedule the profiler records in cycles and calls ``on_trace_ready`` after each; the first
completed cycle is what is exported (one trace per rank, as the run directory expects), and the
marker is placed at the start of that cycle's recording, since anything before it is discarded.
"""
import os
import socket
from typing import List, Optional

import torch
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerAction, ProfilerActivity

from moe_run.clock import wall_ns
from moe_run.export import write_ops, write_trace
from moe_run.settings import MARKER

RECORDING = (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


def trace_format() -> str:
    return "kineto" if torch.autograd.kineto_available() else "legacy"


def labelled_forward(label: str, moe_suffix: bool):
    """A patch for a module class's ``forward``: each call becomes a trace range named ``label``,
    followed by " with MoE" / " without MoE" (by the instance's ``is_moe_layer``) when moe_suffix."""
    def patch(forward):
        def wrapped(self, *args, **kwargs):
            name = label
            if moe_suffix:
                name += " with MoE" if getattr(self, "is_moe_layer", False) else " without MoE"
            with record_function(name):
                return forward(self, *args, **kwargs)
        return wrapped
    return patch


class ProfilerSession:
    def __init__(self, profile: dict, rank: int, rank_dir: str, on_export_start=None):
        self.profile = profile
        self.rank = rank
        self.rank_dir = rank_dir
        self.on_export_start = on_export_start
        self.notes: List[str] = []
        self.prof = None
        self.profiler_start_local_ns: Optional[int] = None
        self.marker_local_ns: Optional[int] = None
        self.marker_trace_us: Optional[str] = None
        self.trace_file: Optional[str] = None
        self.export_seconds = 0.0
        self._discard = False

    def start(self) -> None:
        activities = []
        wanted = self.profile.get("activities") or ["cpu"]
        if "cpu" in wanted:
            activities.append(ProfilerActivity.CPU)
        if "cuda" in wanted:
            if torch.cuda.is_available():
                activities.append(ProfilerActivity.CUDA)
            else:
                self.notes.append("profile.activities asks for cuda but CUDA is not available: CPU only")
        if not activities:  # cuda only, without CUDA
            activities.append(ProfilerActivity.CPU)
        schedule = self.profile.get("schedule")
        self.prof = torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(**schedule) if schedule else None,
            on_trace_ready=self._on_trace_ready,
            record_shapes=bool(self.profile.get("record_shapes")),
            profile_memory=bool(self.profile.get("profile_memory")),
            with_stack=bool(self.profile.get("with_stack")),
        )
        self.prof.start()
        self.profiler_start_local_ns = wall_ns()

    def step(self) -> None:
        self.prof.step()
        self.mark_if_recording()

    def stop(self) -> None:
        """Stop profiling; the last cycle (or the whole region without a schedule) is exported here."""
        self.prof.stop()
        if self.trace_file is None:
            self.notes.append("the profiler recorded nothing (schedule longer than the region?): no trace")

    def abandon(self) -> None:
        """Stop without exporting: the region failed and the run is being stopped."""
        self._discard = True
        self.prof.stop()

    def recording(self) -> bool:
        return self.prof.current_action in RECORDING

    def mark_if_recording(self) -> None:
        """Record the marker now, unless it is recorded already or the schedule is not recording yet
        (then the first recorded step places it)."""
        if self.marker_local_ns is not None or not self.recording():
            return
        before = wall_ns()
        marker = record_function(MARKER)
        marker.__enter__()
        after = wall_ns()
        marker.__exit__(None, None, None)
        self.marker_local_ns = before + (after - before) // 2

    def _on_trace_ready(self, prof) -> None:
        if self._discard:
            return
        if self.trace_file is not None:
            self.notes.append(f"schedule cycle ending at step {prof.step_num} not exported (one trace per rank)")
            return
        if self.on_export_start:
            self.on_export_start()
        t0 = wall_ns()
        name = f"{socket.gethostname()}_{os.getpid()}.rank{self.rank}.pt.trace.json.gz"
        self.marker_trace_us = write_trace(prof, self.rank_dir, name)
        if self.marker_trace_us is None:
            self.notes.append("the trace holds no moe_run/start marker: it cannot be aligned")
        write_ops(prof.key_averages(), self.rank_dir, torch.__version__, trace_format(),
                  int(self.profile.get("row_limit") or 100))
        self.trace_file = name
        self.export_seconds += (wall_ns() - t0) / 1e9

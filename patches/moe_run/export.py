"""What a profiled rank leaves in rank-R/: the gzipped trace, ops.json and the profiler's tables.

Names of FunctionEventAvg's fields changed in torch 2.4 (cuda_* became device_*, the cuda_* names
stayed for a while as deprecated properties and then went away); every reader here asks for the
device_* name first and falls back to cuda_*, so torch 1.13 and 2.x both work.
"""
import gzip
import json
import os
import re
import shutil
from decimal import Decimal
from typing import Optional

from moe_run.rankfiles import write_text
from moe_run.settings import MARKER

CHUNK = 1 << 20
# an event object is far shorter than this, so a match near a chunk's end is complete in the next read
OVERLAP = 1 << 16
_TS_RE = re.compile(rb'"ts"\s*:\s*"?(-?[0-9][0-9.eE+-]*)')
_GPU_CAT_RE = re.compile(rb'"cat"\s*:\s*"gpu_user_annotation"')


def write_trace(prof, rank_dir: str, file_name: str) -> Optional[str]:
    """Export the trace gzip-compressed to rank_dir/file_name; return the marker's ts (µs, decimal
    string, in the trace's own time base) or None when the trace holds no marker."""
    final = os.path.join(rank_dir, file_name)
    plain = final[: -len(".gz")] + ".tmp"  # neither name matches *.pt.trace.json[.gz] until done
    partial = final + ".partial"
    prof.export_chrome_trace(plain)
    try:
        marker_ts = find_marker_ts(plain)
        with open(plain, "rb") as src, gzip.open(partial, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        os.replace(partial, final)
    finally:
        for leftover in (plain, partial):
            if os.path.exists(leftover):
                os.remove(leftover)
    return marker_ts


def find_marker_ts(path: str, name: str = MARKER) -> Optional[str]:
    """The ts of the first CPU-side range called ``name`` (moe_run/start), read by streaming the file
    (it can be gigabytes).

    Works for both layouts: legacy (``{"name": ..., "ph": "X", "ts": ...}``) and Kineto
    (``{"ph": "X", "cat": "user_annotation", "name": ..., "pid": ..., "tid": ..., "ts": ...}``); in both
    the name and ts precede the event's only nested object (args). Kineto also copies the range onto
    the GPU timeline (cat gpu_user_annotation); that copy is skipped.
    """
    name_re = re.compile(rb'"name"\s*:\s*"' + re.escape(name.encode()) + rb'"')
    with open(path, "rb") as f:
        buf = b""
        while True:
            chunk = f.read(CHUNK)
            buf += chunk
            for m in name_re.finditer(buf):
                start = buf.rfind(b"{", 0, m.start())
                end = buf.find(b"}", m.end())
                if start < 0 or end < 0:
                    continue
                event = buf[start:end]
                if _GPU_CAT_RE.search(event):
                    continue
                ts = _TS_RE.search(event)
                if ts:
                    return format(Decimal(ts.group(1).decode()), "f")
            if not chunk:
                return None
            buf = buf[-OVERLAP:]


def _first(obj, *names, default=0):
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def device_sort_key(averages) -> str:
    return "device_time_total" if averages and hasattr(averages[0], "device_time_total") else "cuda_time_total"


def op_rows(averages) -> list:
    rows = []
    for avg in averages:
        rows.append({
            "name": avg.key,
            "calls": int(avg.count),
            "cpu_self_us": float(avg.self_cpu_time_total),
            "cpu_total_us": float(avg.cpu_time_total),
            "device_self_us": float(_first(avg, "self_device_time_total", "self_cuda_time_total")),
            "device_total_us": float(_first(avg, "device_time_total", "cuda_time_total")),
            "cpu_mem_bytes": int(avg.cpu_memory_usage),
            "cpu_self_mem_bytes": int(avg.self_cpu_memory_usage),
            "device_mem_bytes": int(_first(avg, "device_memory_usage", "cuda_memory_usage")),
            "device_self_mem_bytes": int(_first(avg, "self_device_memory_usage", "self_cuda_memory_usage")),
        })
    rows.sort(key=lambda r: r["cpu_total_us"], reverse=True)
    return rows


def write_ops(averages, rank_dir: str, torch_version: str, trace_format: str, row_limit: int) -> None:
    """ops.json (every op) and the two tables (ops_cpu.txt, ops_cuda.txt) as the seed's runs printed them."""
    rows = op_rows(averages)
    doc = {"schema": 1, "torch_version": torch_version, "trace_format": trace_format,
           "device_time_field": device_sort_key(averages), "ops": rows}
    write_text(os.path.join(rank_dir, "ops.json"), json.dumps(doc, indent=1) + "\n")
    write_text(os.path.join(rank_dir, "ops_cpu.txt"), averages.table(sort_by="cpu_time_total", row_limit=row_limit))
    device_table = averages.table(sort_by=device_sort_key(averages), row_limit=row_limit)
    if not any(r["device_total_us"] > 0 for r in rows):
        device_table = "# no device (CUDA) time was recorded: CPU-only profile, rows in no useful order\n" + device_table
    write_text(os.path.join(rank_dir, "ops_cuda.txt"), device_table)

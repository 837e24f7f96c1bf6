"""rank.json (RankInfo in src/run-dir.ts) and error.json, written atomically into rank-R/; write_text
is the atomic write every file of rank-R/ goes through (export.py's ops.json and tables too)."""
import datetime
import json
import os
import traceback


def write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path: str, doc: dict) -> None:
    write_text(path, json.dumps(doc, indent=2) + "\n")


def write_error(rank_dir: str, exc: BaseException, time_ns: int) -> None:
    write_json(os.path.join(rank_dir, "error.json"), {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "time": datetime.datetime.fromtimestamp(time_ns / 1e9, datetime.timezone.utc).isoformat(),
        "time_ns": str(time_ns),
    })

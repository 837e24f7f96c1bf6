"""The environment a rank gets from the plan (docs/contracts.md, "Environment of a rank")."""
import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

MARKER = "moe_run/start"

PROFILE_DEFAULTS = {
    "enabled": True,
    "activities": ["cpu"],
    "record_shapes": False,
    "profile_memory": False,
    "with_stack": False,
    "schedule": None,
    "hooks": [],
    "region": None,
    "step": None,
    "row_limit": 100,
}


@dataclass
class Hook:
    target: str
    label: str
    moe_suffix: bool


@dataclass
class Settings:
    rank: int
    world_size: int
    rank_dir: str
    rdzv: Optional[str]
    token: str
    profile: dict
    hooks: List[Hook] = field(default_factory=list)


def _int_env(names, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value:
            try:
                return int(value)
            except ValueError:
                raise SystemExit(f"moe-run bootstrap: {name}={value!r} is not an integer")
    return default


def read_settings() -> Settings:
    rank = _int_env(("MOE_RUN_RANK", "RANK"), 0)
    world_size = _int_env(("MOE_RUN_WORLD_SIZE", "WORLD_SIZE"), 1)
    # standalone (a command copied from --dry-run without its environment): export next to cwd
    rank_dir = os.path.abspath(os.environ.get("MOE_RUN_RANK_DIR") or f"rank-{rank}")
    raw = os.environ.get("MOE_RUN_PROFILE")
    try:
        given = json.loads(raw) if raw else {}
    except json.JSONDecodeError as e:
        raise SystemExit(f"moe-run bootstrap: MOE_RUN_PROFILE is not valid JSON ({e})")
    profile = {**PROFILE_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    hooks = [
        Hook(target=h["target"], label=h.get("label") or h["target"].rsplit(":", 1)[-1].rsplit(".", 1)[-1],
             moe_suffix=bool(h.get("moe_suffix", False)))
        for h in profile.get("hooks") or []
    ]
    return Settings(rank=rank, world_size=world_size, rank_dir=rank_dir, rdzv=os.environ.get("MOE_RUN_RDZV") or None,
                    token=os.environ.get("MOE_RUN_TOKEN", ""), profile=profile, hooks=hooks)

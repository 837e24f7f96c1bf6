"""The bootstrap's wall clock. Every anchor in rank.json and every clock-sync reading comes from here,
so the test-only skew (MOE_RUN_TEST_CLOCK_SKEW_NS) shifts all of them alike, as a wrong system clock
would."""
import os
import time

_SKEW_NS = int(os.environ.get("MOE_RUN_TEST_CLOCK_SKEW_NS") or 0)


def wall_ns() -> int:
    return time.time_ns() + _SKEW_NS


def seconds_between(start_ns: int, end_ns: int) -> float:
    return round((end_ns - start_ns) / 1e9, 6)

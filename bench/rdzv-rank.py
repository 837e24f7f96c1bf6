"""The rank workload of bench/rendezvous.ts: a region (``__main__:work``) that does next to nothing, so
that a run is the bootstrap's own part: connect, clock sync, profiler start, start barrier, the
moe_run/start marker, export, end barrier."""
import torch


def work():
    torch.ones(64).sum()


if __name__ == "__main__":
    work()

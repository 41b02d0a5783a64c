"""Where torch code runs: the one choice of device (and CPU threads) for every torch family, backend and chain."""

from __future__ import annotations


def pick_device(device: str, threads: int | None = None) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is present, else ``cpu``; on the CPU, use ``threads`` threads (None:
    every core this process may run on). On a loaded machine one thread can be several times faster than two."""
    import os

    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if torch.get_num_threads() != (threads or cores):
            torch.set_num_threads(threads or cores)
    return device

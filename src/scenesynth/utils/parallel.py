"""Worker-count conventions shared by the parallel stages."""

from __future__ import annotations

import os


def resolve_workers(workers: int) -> int:
    """0 means every core this process may use (respects SLURM/cgroup CPU masks)."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)

"""Which DDP rank this process is, known before Lightning or torch is imported (files are written
by rank 0 alone; the other ranks follow its decisions)."""

from __future__ import annotations

import os


def launch_rank() -> int:
    """This process's global rank as the launcher set it (what Lightning's `rank_zero_only.rank`
    reads before a trainer exists: RANK, LOCAL_RANK, SLURM_PROCID, JSM_NAMESPACE_RANK)."""
    for variable in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(variable):
            return int(os.environ[variable])
    return 0

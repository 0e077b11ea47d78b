"""Give each concurrent GPU job on a workstation its own devices, so that jobs never pile onto GPU 0.

Snakemake's `--resources gpu=N` only counts GPUs; it does not say which. A job claims free device indices by holding
an exclusive lock file per device for its lifetime; the OS releases the locks when the job ends, however it ends.
Under SLURM (or whenever CUDA_VISIBLE_DEVICES is already set) the scheduler has chosen and nothing is claimed.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_DIR = Path(os.environ.get("VIDSSL_GPU_LOCKS", "/tmp/vidssl-gpu-locks"))
_held = []  # open lock files: closing them would release the devices


def visible_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def claim_gpus(wanted: int, total: int | None = None) -> list[int]:
    """Lock `wanted` free devices among `total`, export them in CUDA_VISIBLE_DEVICES, and return them."""
    if wanted <= 0 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return []
    total = visible_gpu_count() if total is None else total
    if total == 0:
        return []
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    claimed = []
    for index in range(total):
        handle = open(LOCK_DIR / f"gpu{index}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        claimed.append(index)
        if len(claimed) == wanted:
            break
    if len(claimed) < wanted:
        raise RuntimeError(f"asked for {wanted} GPUs, only {len(claimed)} of {total} are free: "
                           "run snakemake with --resources gpu=<number of GPUs>")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, claimed))
    return claimed

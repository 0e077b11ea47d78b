"""Give each concurrent GPU job on a workstation its own devices, so that jobs never pile onto GPU 0.

Snakemake's `--resources gpu=N` only counts GPUs; it does not say which. A job claims free device indices by holding
an exclusive lock file per device for its lifetime; the OS releases the locks when the job ends, however it ends.
Under SLURM (or whenever CUDA_VISIBLE_DEVICES is already set) the scheduler has chosen and nothing is claimed.

Nothing here starts CUDA: it reads CUDA_VISIBLE_DEVICES once, when it initialises, so the claim must come first.
The lock folder is shared by every user of the machine (world-writable and sticky, as /tmp), so that one user's
jobs also keep off another's devices.
"""
from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path

from vidssl.core.errors import UserError

LOCK_DIR = Path(os.environ.get("VIDSSL_GPU_LOCKS", "/tmp/vidssl-gpu-locks"))
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per device the NVIDIA driver sees
DEVICE_NODES = Path("/dev")
_held = []  # open lock files: closing them would release the devices


def gpu_count() -> int:
    """The machine's NVIDIA GPUs, from the driver's /proc entries (else its /dev/nvidiaN nodes), without CUDA."""
    if NVIDIA_GPUS.is_dir():
        return len(list(NVIDIA_GPUS.iterdir()))
    return sum(1 for node in DEVICE_NODES.glob("nvidia*") if re.fullmatch(r"nvidia\d+", node.name))


def lock_folder() -> Path:
    """LOCK_DIR, made if missing as a world-writable sticky folder: set up aside and renamed into place, so that no
    other user's job ever sees it with narrower permissions."""
    if not LOCK_DIR.is_dir():
        LOCK_DIR.parent.mkdir(parents=True, exist_ok=True)
        draft = Path(tempfile.mkdtemp(prefix=f".{LOCK_DIR.name}.", dir=LOCK_DIR.parent))
        os.chmod(draft, 0o1777)
        try:
            os.rename(draft, LOCK_DIR)
        except OSError:  # another job made it first
            draft.rmdir()
    return LOCK_DIR


def open_lock(path: Path) -> int:
    """A read handle on `path` (flock needs no more), made readable by all if missing. An existing file is opened
    without O_CREAT, which fs.protected_regular refuses for another user's file in a sticky folder."""
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        pass
    try:
        handle = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return os.open(path, os.O_RDONLY)
    os.fchmod(handle, 0o644)  # whatever this user's umask
    return handle


def claim_gpus(wanted: int, total: int | None = None) -> list[int]:
    """Lock `wanted` free devices among `total`, export them in CUDA_VISIBLE_DEVICES, and return them."""
    if wanted <= 0 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return []
    total = gpu_count() if total is None else total
    if total == 0:
        return []
    claimed = []
    try:
        folder = lock_folder()
        for index in range(total):
            handle = open_lock(folder / f"gpu{index}.lock")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            _held.append(handle)
            claimed.append(index)
            if len(claimed) == wanted:
                break
    except PermissionError as error:
        raise UserError(f"GPU lock folder {LOCK_DIR}: {error.strerror} for user {os.getuid()}; set VIDSSL_GPU_LOCKS "
                        "to a folder every user of this machine can write") from error
    if len(claimed) < wanted:
        raise UserError(f"asked for {wanted} GPUs, only {len(claimed)} of {total} are free: "
                        "run snakemake with --resources gpu=<number of GPUs> (make run does)")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, claimed))
    return claimed

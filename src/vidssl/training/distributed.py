"""The process group of a torchrun job: this process's rank and the world, joining and leaving, and the cross-rank
collectives that training and MoCo's shuffle and queue use. Outside torchrun every helper acts as a world of one."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from vidssl.core.errors import UserError


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if distributed() else 1


def rank() -> int:
    return dist.get_rank() if distributed() else 0


def is_main() -> bool:
    """Whether this process writes the run's files (rank 0)."""
    return rank() == 0


def join(gpus: int) -> int:
    """Join torchrun's process group when the job has several processes; return this process's local rank (its GPU).

    `gpus` is the configured train.gpus: more than one outside torchrun is a user mistake, not a one-GPU run.
    """
    world = int(os.environ.get("WORLD_SIZE", 1))
    if gpus > 1 and world == 1:
        raise UserError(f"train.gpus = {gpus} needs the job started by torchrun --nproc_per_node=N")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("LOCAL_RANK", 0))


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's `x`, concatenated in rank order."""
    gathered = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, x.contiguous())
    return torch.cat(gathered)


def average(x: torch.Tensor) -> torch.Tensor:
    """`x` averaged over the ranks, in place: a sum divided by the world, which every backend takes (ReduceOp.AVG is
    documented as NCCL-only)."""
    if distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x.div_(dist.get_world_size())
    return x


def barrier() -> None:
    if distributed():
        dist.barrier()

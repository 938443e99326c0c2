"""PyTorch's own distributed stack: torchrun environment, process group, DDP wrapping.

Launched by ``torchrun --nproc_per_node N -m advprior.cli train ...`` (or the ``advprior``
script), the usual ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` variables select DDP: NCCL on GPUs (gloo
where torch has no NCCL: Windows), gloo on CPU. Without them training runs in one plain process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str | torch.device | None = None) -> DistInfo:
    """Join the torchrun process group if the environment asks for one.

    Device: ``device`` if given, else ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = torch.device(device)
    if dev.type == "meta":
        # before the run folder is claimed: meta tensors hold no values, so training would
        # stop at its first loss with "Cannot copy out of meta tensor" and leave a tb/ folder
        raise ValueError("device 'meta' holds no values to train with; use cpu or a GPU")
    if dev.type == "cuda":
        # "cuda" means the current GPU; set_device and DDP's device_ids need its index
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend_for(dev))
        owns = True
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev, owns_group=owns)


def backend_for(device: torch.device) -> str:
    """The process-group backend for ``device``: NCCL for CUDA where this torch has it (Linux
    builds), else gloo (CPU; CUDA on Windows, whose torch wheels carry no NCCL)."""
    return "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"


def teardown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        # gloo's worker thread frees finished work (all_gather_object's Python-owned tensors)
        # and needs the GIL to do so; if the last reference to the group drops while the main
        # thread holds the GIL, ~ProcessGroupGloo joins that thread and both wait forever (seen
        # under CPU load). Sleeping releases the GIL so the worker can finish first.
        time.sleep(0.2)
        dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """DistributedDataParallel around ``module`` when distributed, else ``module`` itself."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") else module


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` in rank order (a one-item list when not distributed)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_from_main(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Rank 0's ``t`` on every rank (``t`` itself when not distributed). Every rank passes a
    tensor of the same shape and dtype; the result is on ``t``'s device and ``t`` is left as it
    was (the broadcast writes into a copy, also where ``t`` already is on the group's device)."""
    if not info.enabled:
        return t
    buf = t.to(info.device, memory_format=torch.contiguous_format, copy=True)
    dist.broadcast(buf, src=0)
    return buf.to(t.device)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """True on every rank if any rank's ``flag`` is true (used to stop together on a signal)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())

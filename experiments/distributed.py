"""Data-parallel training under ``torchrun`` (DDP), and collectives that are no-ops on one process.

``torchrun --nproc_per_node=N run.py ...`` starts N processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
set. ``init_from_env`` joins the process group (NCCL on CUDA, gloo on CPU); the trainer wraps the model
in ``DistributedDataParallel`` (gradient all-reduce) and ``ShardedLoader`` gives each rank its slice of
every global batch (same permutation and augmentation on every rank, so N processes see exactly the
batches of one process). Rank 0 alone logs, writes W&B, records and checkpoints.

Method code (Hyperflows, RigL, GraNet) calls ``all_reduce_`` on the scores that decide drop/grow and
``broadcast_`` on masks, so every rank holds the same mask (as rigl-torch does); both return the
tensor unchanged when the run is not distributed.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError

log = logging.getLogger(__name__)

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and always when not distributed): the process that writes outputs."""
    return rank() == 0


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); returns this rank's device."""
    if env_world_size() <= 1 or is_distributed():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(minutes=30))
    log.info("DDP: rank %d/%d on %s (%s)", dist.get_rank(), dist.get_world_size(), device, backend)
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_(tensor: torch.Tensor, op: str = "mean") -> torch.Tensor:
    """In-place all-reduce (``mean`` | ``sum`` | ``max`` | ``min``) across ranks; no-op on one process."""
    if not is_distributed():
        return tensor
    if op == "mean":
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        if tensor.is_floating_point():
            tensor.div_(dist.get_world_size())
        else:
            tensor.floor_divide_(dist.get_world_size())
        return tensor
    dist.all_reduce(tensor, op=_OPS[op])
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """In-place broadcast from rank ``src`` (e.g. a mask decided on rank 0); no-op on one process."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """A picklable object from rank ``src`` (run id, resume state) to every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` around ``model``; buffers (masks, BN stats) follow rank 0 every forward."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)  # buffers sync from rank 0 by default


class ShardedLoader:
    """This rank's slice of every global batch of an in-memory ``TensorLoader``.

    Every rank draws the same permutation (same generator) and augments the whole global batch with
    the same generator, then keeps rows ``tensor_split(batch, world)[rank]``: N ranks together see
    exactly the batches, augmentations and averaged gradient of one process with the same batch size.
    """

    def __init__(self, loader, rank: int, world_size: int):
        if loader.batch_size % world_size:
            raise ConfigError(f"trainer.batch_size={loader.batch_size} must be divisible by the number of "
                             f"DDP processes ({world_size})")
        self.loader, self.rank, self.world = loader, rank, world_size

    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

    def __len__(self) -> int:
        return len(self.loader)

    def generator_state(self) -> dict:
        return self.loader.generator_state()

    def set_generator_state(self, state: dict) -> None:
        self.loader.set_generator_state(state)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ld = self.loader
        n = len(ld.labels)
        order = torch.randperm(n, generator=ld.generator) if ld.shuffle else torch.arange(n)
        order = order.to(ld.device)
        for b in range(len(ld)):
            idx = order[b * ld.batch_size:(b + 1) * ld.batch_size]
            rows = torch.tensor_split(torch.arange(len(idx), device=ld.device), self.world)[self.rank]
            if ld.augment is None:
                idx = idx[rows]
                x = ld.images[idx].float().div_(255.0)
            else:  # augment the global batch so the augmentation RNG stream matches one process
                x = ld.augment(ld.images[idx].float().div_(255.0), ld.aug_generator)[rows]
                idx = idx[rows]
            yield (x - ld.mean) / ld.std, ld.labels[idx]


def shard_loader(loader):
    """Wrap a training loader for this rank (in-memory loaders); others are returned as they are."""
    if not is_distributed():
        return loader
    if hasattr(loader, "images") and hasattr(loader, "generator"):
        return ShardedLoader(loader, rank(), world_size())
    log.warning("DDP: %s is not an in-memory TensorLoader; every rank sees the full data (use a "
                "DistributedSampler in its loader factory)", type(loader).__name__)
    return loader

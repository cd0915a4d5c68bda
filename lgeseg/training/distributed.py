"""Data-parallel training over processes (torch.distributed): which process this is, the batch split, reductions.

``torchrun --nproc-per-node N -m lgeseg.cli.train ...`` (or ``lgeseg_train --gpus N``, which runs
torchrun itself) starts N processes and gives each ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``
in its environment; the CLI reads them into a ``DistributedContext`` and the trainer does the rest:

* one process per device: ``cuda:<LOCAL_RANK>`` with the NCCL backend, or the CPU with gloo;
* the batch size is the *global* batch (slices per optimizer step over all processes); rank r
  draws ``split_batch(batch, N)[r]`` slices of it with its own sampling and augmentation seeds;
* the network is wrapped in ``DistributedDataParallel``, which averages the gradients;
* rank 0 alone validates and writes the model folder (checkpoints, logs, plots, ``model.json``);
  the other ranks wait for it at the next epoch.

With ``WORLD_SIZE`` 1 (or none) nothing here is used and training is the single-process one.

Example:
    >>> context = DistributedContext.from_env({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    >>> context.is_main, split_batch(44, 3)
    (False, [15, 15, 14])
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

#: How long a collective may wait: the other ranks wait for rank 0 while it validates and writes.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """This process's place in a data-parallel run.

    Attributes:
        rank: 0 .. world_size - 1; rank 0 validates and writes the model folder.
        world_size: number of processes training the one model.
        local_rank: index of this process on its machine (its CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise ValueError(f"distributed context: rank {self.rank} / local rank {self.local_rank} does not fit "
                             f"world size {self.world_size} (expected 0 <= rank < world size)")

    @property
    def enabled(self) -> bool:
        """True when more than one process trains the model."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that validates and writes files."""
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DistributedContext:
        """Read torchrun's ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (absent: a single process).

        Raises ``ValueError`` naming the variable when one is not an integer.
        """
        values = {}
        for name, default in (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)):
            text = env.get(name, str(default))
            try:
                values[name] = int(text)
            except ValueError as err:
                raise ValueError(f"environment variable {name}={text!r}: expected an integer") from err
        return cls(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


SINGLE_PROCESS = DistributedContext()


def split_batch(batch_size: int, world_size: int) -> list[int]:
    """Slices per rank of a global batch: as equal as possible, the first ranks take the remainder.

    Raises ``ValueError`` when there are more processes than slices. Example: (44, 3) -> [15, 15, 14].

    Example:
        >>> split_batch(44, 3), split_batch(4, 4)
        ([15, 15, 14], [1, 1, 1, 1])
        >>> split_batch(2, 3)
        Traceback (most recent call last):
        ValueError: batch size 2 is smaller than the 3 processes: every process needs at least one slice (...)
    """
    if batch_size < world_size:
        raise ValueError(f"batch size {batch_size} is smaller than the {world_size} processes: every process "
                         f"needs at least one slice (use --batch-size >= {world_size} or fewer processes)")
    base, extra = divmod(batch_size, world_size)
    return [base + (1 if rank < extra else 0) for rank in range(world_size)]


def rank_device(device: torch.device, context: DistributedContext) -> torch.device:
    """The device of this rank: ``cuda:<local_rank>`` when training on CUDA, else ``device`` unchanged.

    Raises ``ValueError`` when the machine has fewer CUDA devices than the local rank needs, or for
    several processes on MPS (DistributedDataParallel runs on CUDA with NCCL or on the CPU with gloo).

    Example:
        >>> rank_device(torch.device("cpu"), DistributedContext(rank=1, world_size=2, local_rank=1))  # gloo on the CPU
        device(type='cpu')
        >>> rank_device(torch.device("mps"), DistributedContext(rank=0, world_size=2))
        Traceback (most recent call last):
        ValueError: data-parallel training runs on CUDA (nccl) or on the CPU (gloo), not on MPS: use --device cpu or ...
    """
    if device.type == "mps" and context.enabled:
        raise ValueError("data-parallel training runs on CUDA (nccl) or on the CPU (gloo), not on MPS: "
                         "use --device cpu or one process")
    if device.type != "cuda" or not context.enabled:
        return device
    count = torch.cuda.device_count()
    if context.local_rank >= count:
        raise ValueError(f"process with local rank {context.local_rank} needs cuda:{context.local_rank}, but "
                         f"this machine has {count} CUDA device(s): start at most {count} processes per machine")
    return torch.device("cuda", context.local_rank)


@contextlib.contextmanager
def process_group(context: DistributedContext, device: torch.device) -> Iterator[None]:
    """Join the process group for the run (NCCL on CUDA, gloo elsewhere); leave it at the end.

    Does nothing for a single process. Uses torchrun's ``MASTER_ADDR``/``MASTER_PORT`` (``env://``).

    Example:
        >>> with process_group(SINGLE_PROCESS, torch.device("cpu")):  # under torchrun: each rank's context
        ...     dist.is_initialized()  # one process: no group to join
        False
    """
    if not context.enabled:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=context.rank, world_size=context.world_size, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield
        dist.barrier()  # rank 0 finishes the model folder before anyone leaves
    finally:
        dist.destroy_process_group()


def wrap_data_parallel(network: torch.nn.Module, device: torch.device,
                       context: DistributedContext) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``network`` (already on ``device``); ``network`` itself for one process.

    DDP copies rank 0's weights to every rank and averages gradients after each backward pass.

    Example:
        >>> network = torch.nn.Linear(2, 2)
        >>> wrap_data_parallel(network, torch.device("cpu"), SINGLE_PROCESS) is network  # DDP only with several ranks
        True
    """
    if not context.enabled:
        return network
    device_ids = [device.index] if device.type == "cuda" else None
    # The lowest-resolution deep-supervision head has loss weight 0 (and fine-tuning freezes blocks):
    # DDP must expect parameters without gradients.
    return DistributedDataParallel(network, device_ids=device_ids, find_unused_parameters=True)


def broadcast_from_main(value: Any, context: DistributedContext) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank; ``value`` itself for one process.

    Example:
        >>> broadcast_from_main({"seed": 3}, SINGLE_PROCESS)  # under torchrun: rank 0's value on every rank
        {'seed': 3}
    """
    if not context.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def reduce_numbers(values: list[float], device: torch.device, context: DistributedContext,
                   op: str = "sum") -> list[float]:
    """Element-wise ``"sum"`` or ``"max"`` of ``values`` over the ranks (the values themselves for one process).

    Example:
        >>> reduce_numbers([1.5, 2.0], torch.device("cpu"), SINGLE_PROCESS, op="max")  # one process: as they are
        [1.5, 2.0]
    """
    if not context.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return [float(v) for v in tensor.cpu()]

"""Which process of a distributed launch this is, and what the processes agree on.

Under torchrun every rank runs the whole `tailorlm train`; only rank 0 writes the registry, the audit log
and the run's files (one run per launch), the others train and write nothing. The run id is made on rank 0
and broadcast, so every rank checkpoints into the same run folder. A launch that reached fewer processes
than it asked for (a launcher falling back silently) is refused.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

from tailorlm.errors import UserError

T = TypeVar("T")
EXPECTED_WORLD_ENV = "TAILORLM_WORLD_SIZE"
"""Set by `tailorlm train --gpus/--processes` for its ranks: how many processes the launch asked for."""
RUN_ID_ENV = "TAILORLM_RUN_ID"
"""Set by a Slurm script: the run id decided when the script was written (its logs are already there)."""


class DistributedError(UserError, RuntimeError):
    """A distributed launch that didn't get what it asked for."""


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True on rank 0 (and when not distributed): the process that writes."""
    return rank() == 0


def _init() -> Any:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return dist


def check_world() -> None:
    """Refuse a launch whose processes are fewer (or more) than the launch asked for."""
    if os.environ.get("ACCELERATE_USE_CPU") is not None and os.environ.get("MASTER_ADDR") and world_size() == 1:
        # accelerate's launcher sets a rendezvous only when it was asked for several processes; with --cpu
        # it then starts just one (its simple launcher), which would train alone without a word
        raise DistributedError(
            "accelerate launch was asked for several processes but started one (its --cpu launcher runs a single "
            "process); refusing to train on a silent fallback",
            hint="use `tailorlm train --processes N` (torchrun) for CPU processes, `--gpus N` for GPUs",
        )
    expected = os.environ.get(EXPECTED_WORLD_ENV)
    reached = _init().get_world_size() if world_size() > 1 else 1
    if expected and int(expected) != reached:
        raise DistributedError(
            f"the launch asked for {expected} training processes but {reached} started; refusing to train "
            "on a silent fallback",
            hint="check the launcher's options (accelerate launch --cpu runs one process); "
            "use `tailorlm train --gpus N` or `--processes N`",
        )


def new_run_id(make: Any) -> str:
    """The run id of this launch: the Slurm script's, else rank 0's `make()`, the same on every rank."""
    return os.environ.get(RUN_ID_ENV) or from_main(make())


def from_main(value: T) -> T:
    """Rank 0's `value` on every rank (the run id, the dataset id); the value itself when not distributed."""
    if world_size() <= 1:
        return value
    box = [value]
    _init().broadcast_object_list(box, src=0)
    return box[0]

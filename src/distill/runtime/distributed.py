"""Several processes (`accelerate launch`, `torchrun`): who trains on what, and who writes.

Every process runs the whole recipe; the training loop gives each one its share of every step's
micro-batches and accelerate's DDP averages the gradients. Only the main process writes the run
directory, prints progress and measures latency; the teacher cache is built by the main process
of each machine while the others wait, then read by all. In one process all of this is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from accelerate import PartialState

T = TypeVar("T")


def _state() -> PartialState:
    """accelerate's process state. Without a GPU it must be asked for CPU explicitly, or it
    reports a single process under torchrun (and the first caller fixes it for all)."""
    return PartialState(cpu=not torch.cuda.is_available())


def world() -> tuple[int, int]:
    """(this process's rank, number of processes)."""
    state = _state()
    return state.process_index, state.num_processes


def is_main() -> bool:
    return _state().is_main_process


def barrier() -> None:
    _state().wait_for_everyone()


@contextmanager
def local_main_first() -> Iterator[None]:
    """The main process of this machine runs the block first (e.g. builds the teacher cache);
    the others run it after, and find its result."""
    with _state().local_main_process_first():
        yield


def from_main(compute: Callable[[], T]) -> T:
    """`compute()` on the main process, its result handed to every process (a dev score that
    decides keep_best and early stopping must be the same everywhere)."""
    rank, size = world()
    if size == 1:
        return compute()
    value = [compute() if rank == 0 else None]
    torch.distributed.broadcast_object_list(value, src=0)
    return value[0]  # type: ignore[return-value]


def sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over processes (one small all-reduce); the input in one process."""
    if world()[1] == 1:
        return values
    values = values.clone()
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
    return values


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Average these parameters' gradients over the processes, as DDP does for the modules it
    wraps (one all-reduce of all of them flattened)."""
    size = world()[1]
    grads = [p.grad for p in parameters if p.grad is not None]
    if size == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    flat /= size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()

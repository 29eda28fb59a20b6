"""TensorBoard scalars of a run, under OUT/tb/<phase>/: each objective's loss, the total, the
learning rate, examples/s and dev scores, at their optimizer step (`tensorboard --logdir OUT/tb`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_AXES = {"step", "epoch", "best_step"}


class ScalarLog:
    """Writes history records as they are logged; does nothing without a directory (outside a
    run directory, or on the processes other than the main one)."""

    def __init__(self, directory: Path | None, purge_step: int | None = None) -> None:
        self.writer = None
        if directory is not None:
            from torch.utils.tensorboard import SummaryWriter  # imported only when writing

            # purge_step: a resumed phase drops what was logged after its checkpoint
            self.writer = SummaryWriter(str(directory), purge_step=purge_step)

    def record(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if key not in _AXES and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

"""Where a run's figures go as it trains: metrics.jsonl always, and TensorBoard's event files in
<run>/tensorboard/ when the config asks (log.tensorboard; the extra barkbench[tensorboard]), so
that `tensorboard --logdir runs/` shows runs and studies side by side."""

from __future__ import annotations

from pathlib import Path

from barkbench.rundir import append_metrics


class Scalars:
    """append(row) writes one evaluation's figures; close() when the run stops. A resumed run
    purges TensorBoard's events from its resume step on, so its curves go on without repeats."""

    def __init__(self, run: Path, tensorboard: bool, step: int):
        self.run, self.writer = run, None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self.writer = SummaryWriter(log_dir=str(run / "tensorboard"), purge_step=step + 1 if step else None)

    def append(self, row: dict) -> None:
        append_metrics(self.run, row)
        self.to_tensorboard(row)

    def to_tensorboard(self, row: dict) -> None:
        """TensorBoard alone: for the test figures at the end, which metrics.jsonl does not hold."""
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(
                        key.replace("_", "/", 1) if key.startswith(("val_", "test_")) else key, value, row["step"]
                    )
                elif isinstance(value, dict):  # accuracy by bucket: one curve per bucket
                    for label, v in value.items():
                        self.writer.add_scalar(f"{key}/{label}", v, row["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

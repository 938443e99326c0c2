"""Training logs: a CSV file per stream, TensorBoard scalars and a tqdm progress bar."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from advprior.errors import require_extra
from advprior.fileio import atomic_path


class CSVLog:
    """Append-only CSV of dict rows with a ``step`` column.

    On resume the rows after the resumed step are dropped first (they were written after the last
    checkpoint by the run that was killed), so the log matches the continued run exactly.
    """

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if resume_step is None and path.exists():
            path.unlink()
        if resume_step is not None and path.exists():
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                self.fields = list(reader.fieldnames or []) or None
                rows = [r for r in reader if int(float(r["step"])) <= resume_step]
            if self.fields is None:
                path.unlink()
                return
            with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
        except OSError as err:
            # the bare "[Errno 28] No space left on device" named neither the file nor what is
            # safe: the checkpoint is written atomically, and a resume drops rows after it
            raise type(err)(
                err.errno,
                f"cannot write {self.path}: {err.strerror or err}; the last checkpoint is "
                "intact, so --resume continues from it once this is fixed",
            ) from err


class TrainLogger:
    """CSV (``train_log.csv``, ``val_log.csv``), TensorBoard (``tb/``) and a progress bar.

    Only the main process logs; other ranks get a logger that does nothing.
    """

    def __init__(
        self,
        out: Path,
        total_steps: int,
        start_step: int,
        *,
        enabled: bool = True,
        progress: bool = True,
        tensorboard: bool = True,
        resume: bool = False,
    ) -> None:
        self.enabled = enabled
        self.bar = None
        self.tb = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        resume_step = start_step if resume else None
        self.train_csv = CSVLog(out / "train_log.csv", resume_step)
        self.val_csv = CSVLog(out / "val_log.csv", resume_step)
        if tensorboard:
            writer = require_extra(
                "torch.utils.tensorboard", "train", "TensorBoard logging", package="tensorboard"
            )
            self.tb = writer.SummaryWriter(
                str(out / "tb"), purge_step=start_step + 1 if resume else None
            )
        if progress:
            tqdm = require_extra("tqdm.auto", "train", "the training progress bar").tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True)

    def train(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.train_csv.write({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", v, step)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k != "time_s"})

    def val(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.val_csv.write({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"val/{k}", v, step)
        if self.bar is not None:
            self.bar.write(f"step {step}: " + ", ".join(f"{k}={v:.2f}" for k, v in values.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()

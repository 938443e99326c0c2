"""Training logs: a CSV file per stream, TensorBoard scalars and a progress display: a tqdm bar
on a terminal, a plain line every half minute where stderr is a file or a pipe (a batch job's
log, CI)."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

from advprior.errors import RunFolderError, require_extra
from advprior.fileio import atomic_path


def _cut_short(row: dict[str, Any]) -> bool:
    """A row read back that a run killed while appending it left incomplete ("1" of
    "123,0.5,..."), whose step may even look like an earlier one: dropped, not resumed from.
    Every complete row has every field (fields are fixed by the first row)."""
    return None in row.values() or None in row


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
            self.fields, rows = _rows_up_to(path, resume_step)
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


def _rows_up_to(path: Path, step: int) -> tuple[list[str] | None, list[dict[str, str]]]:
    """The header and the complete rows up to ``step`` of the run log ``path`` (a row cut
    short by a kill is dropped); a log that cannot be read so (a complete row's step that is
    not a number, no step column, not UTF-8, a line over csv's field limit) is a
    :class:`RunFolderError` naming the file and line, before anything is written (it was a
    bare ``could not convert string to float``)."""
    line = 0
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or []) or None
            rows = []
            for row in reader:
                line = reader.line_num
                if _cut_short(row):
                    continue
                if int(float(row["step"])) <= step:
                    rows.append(row)
    except (ValueError, TypeError, KeyError, OverflowError, csv.Error) as err:
        where = f" line {line}" if line else ""
        why = f"no {err} column" if isinstance(err, KeyError) else str(err)[:200]
        raise RunFolderError(
            f"cannot resume the log {path}{where}: {why}; the checkpoint is intact: fix the "
            "line, or move the file aside and --resume starts a new log"
        ) from None
    return fields, rows


def _interactive(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a closed or replaced stream is not), or a Jupyter
    kernel's, where tqdm.auto draws a widget (the kernel's streams are no terminals)."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class LineProgress:
    """The part of tqdm's interface :class:`TrainLogger` uses, writing whole lines to stderr.

    tqdm redraws its bar with carriage returns up to ten times a second; in a log file (Slurm,
    CI, ``nohup ... 2> log``) that is one ever-growing line of megabytes. This writes one line
    per ``interval`` seconds (and one at the end), and validation lines as they come."""

    def __init__(
        self, total: int, initial: int = 0, *, desc: str = "train", interval: float = 30.0
    ) -> None:
        self.total, self.n, self.desc, self.interval = total, initial, desc, interval
        self.postfix: dict[str, str] = {}
        self._start_n = initial
        self._t0 = self._last = time.monotonic()
        self._shown = initial

    def update(self, k: int = 1) -> None:
        self.n += k
        if time.monotonic() - self._last >= self.interval:
            self._line()

    def set_postfix(self, values: dict[str, Any]) -> None:
        self.postfix = {k: str(v) for k, v in values.items()}

    def write(self, text: str, file: Any = None) -> None:
        print(text, file=file or sys.stderr, flush=True)

    def close(self) -> None:
        if self.n != self._shown:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        rate = (self.n - self._start_n) / max(now - self._t0, 1e-9)
        losses = "".join(f", {k}={v}" for k, v in self.postfix.items())
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        self.write(f"{self.desc}: step {self.n}/{self.total}{share}, {rate:.3g} steps/s{losses}")
        self._last, self._shown = now, self.n


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
            # required either way: the [train] extra is one thing to install, wherever it runs
            tqdm = require_extra("tqdm.auto", "train", "the training progress bar").tqdm
            if _interactive(sys.stderr):
                self.bar = tqdm(
                    total=total_steps, initial=start_step, desc="train", dynamic_ncols=True
                )
            else:
                self.bar = LineProgress(total_steps, start_step)

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
            # stderr, with the bar: stdout is the command's answer (its closing JSON line),
            # which `advprior train ... > result.json` or `| jq` reads; tqdm writes to stdout
            line = ", ".join(f"{k}={v:.2f}" for k, v in values.items())
            self.bar.write(f"step {step}: {line}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()

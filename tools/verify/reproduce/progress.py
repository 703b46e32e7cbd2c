"""Live progress of a reproduction: one line per seed, fed from the child's output.

The trainer prints its log lines (`step:N/M train_loss:X train_time:Tms ...`) as it writes them; each one moves
the seed's bar. On a terminal the bar is a tqdm bar on stderr; elsewhere (CI logs, pipes) it degrades to plain
lines, at most one every few seconds, so a 3-minute run does not print thousands of lines.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

_STEP = re.compile(r"(?:^|\s)step:(\d+)/(\d+)(?=\s|$)")
_FIELD = re.compile(r"(?:^|\s)(train_loss|val_loss|val_bpb|train_time):([-+0-9.eE]+)(ms)?(?=\s|$)")
_FRACTION_STEPS = 1000  # bar resolution: per mille


@dataclass(frozen=True)
class StepUpdate:
    step: int
    planned_steps: int
    train_loss: float | None = None
    val_bpb: float | None = None
    train_time_ms: float | None = None


def parse_progress_line(line: str) -> StepUpdate | None:
    """A `step:N/M ...` log line as numbers; None for any other line (or an unparsable value)."""
    match = _STEP.search(line)
    if match is None:
        return None
    fields: dict[str, float] = {}
    for key, value, _unit in _FIELD.findall(line):
        try:
            fields[key] = float(value)
        except ValueError:
            return None
    return StepUpdate(step=int(match.group(1)), planned_steps=int(match.group(2)), train_loss=fields.get("train_loss"),
                      val_bpb=fields.get("val_bpb"), train_time_ms=fields.get("train_time"))


def fraction_done(update: StepUpdate, train_cap_s: float | None) -> float:
    """How far training is, 0..1: by steps or by the train-time cap, whichever is further along (a run capped by
    wall-clock plans a million steps and stops at a few thousand)."""
    by_steps = update.step / update.planned_steps if update.planned_steps > 0 else 0.0
    by_time = 0.0
    if train_cap_s and update.train_time_ms is not None:
        by_time = update.train_time_ms / (1000.0 * train_cap_s)
    return max(0.0, min(1.0, max(by_steps, by_time)))


def describe(update: StepUpdate | None, *, wall_s: float, time_limit_s: float, train_cap_s: float | None,
             last_loss: float | None = None) -> str:
    """`step 120/1000 train_loss 3.2100 train 12.3/180 s wall 20/360 s` (the parts that are known)."""
    parts: list[str] = []
    if update is not None:
        parts.append(f"step {update.step}/{update.planned_steps}")
        loss = update.train_loss if update.train_loss is not None else last_loss
        if loss is not None:
            parts.append(f"train_loss {loss:.4f}")
        if update.val_bpb is not None:
            parts.append(f"val_bpb {update.val_bpb:.4f}")
        if update.train_time_ms is not None:
            cap = f"/{train_cap_s:g}" if train_cap_s else ""
            parts.append(f"train {update.train_time_ms / 1000:.1f}{cap} s")
    parts.append(f"wall {wall_s:.0f}/{time_limit_s:g} s")
    return " ".join(parts)


def run_summary(run: Any) -> str:
    """One line for a finished seed (a reproduce.SeedRun)."""
    if run.reproduced_bpb is not None:
        claim = f" (claimed {run.claimed_bpb:.6f})" if run.claimed_bpb is not None else " (no claim)"
        result = f"val_bpb {run.reproduced_bpb:.6f}{claim}"
    elif run.timed_out:
        result = "killed at the time limit"
    elif run.returncode:
        result = f"crashed (exit {run.returncode})"
    else:
        result = "no score"
    return f"{run.status.upper()} {result} in {run.wall_s:.0f} s"


class _SeedProgress:
    """Shared state of one seed's display; subclasses decide how it is drawn."""

    def __init__(self, seed: int, index: int, count: int, time_limit_s: float, train_cap_s: float | None,
                 stream: TextIO):
        self.label = f"seed {seed} [{index + 1}/{count}]"
        self.time_limit_s, self.train_cap_s, self.stream = time_limit_s, train_cap_s, stream
        self.started = time.monotonic()
        self.last: StepUpdate | None = None
        self.last_loss: float | None = None

    def _take(self, line: str) -> StepUpdate | None:
        update = parse_progress_line(line)
        if update is not None:
            self.last = update
            if update.train_loss is not None:
                self.last_loss = update.train_loss
        return update

    def _text(self) -> str:
        return describe(self.last, wall_s=time.monotonic() - self.started, time_limit_s=self.time_limit_s,
                        train_cap_s=self.train_cap_s, last_loss=self.last_loss)


class PlainSeedProgress(_SeedProgress):
    """Plain lines: a start line, a step line at most every `interval_s` (and every validation), a result line."""

    def __init__(self, *args: Any, interval_s: float = 10.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.interval_s = interval_s
        self.printed_at: float | None = None
        self._print(f"started (time limit {self.time_limit_s:g} s)")

    def _print(self, text: str) -> None:
        print(f"{self.label}: {text}", file=self.stream, flush=True)

    def update(self, line: str) -> None:
        update = self._take(line)
        if update is None:
            return
        now = time.monotonic()
        if self.printed_at is None or now - self.printed_at >= self.interval_s or update.val_bpb is not None:
            self.printed_at = now
            self._print(self._text())

    def close(self, run: Any) -> None:
        self._print(run_summary(run))


@functools.lru_cache(maxsize=1)
def _status_bar_class() -> type:
    """tqdm with a `{status}` field: its `{postfix}` would prefix our text with ", "."""
    from tqdm import tqdm

    class StatusBar(tqdm):
        status = ""

        @property
        def format_dict(self) -> dict[str, Any]:
            return {**super().format_dict, "status": self.status}

    return StatusBar


class TqdmSeedProgress(_SeedProgress):
    """A tqdm bar (per mille of training done) with step, loss, train time and wall time vs budget after it."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.bar = _status_bar_class()(total=_FRACTION_STEPS, desc=self.label, file=self.stream, leave=True,
                                       dynamic_ncols=True, bar_format="{desc} {percentage:3.0f}%|{bar}| {status}")
        self._show(self._text())

    def _show(self, status: str) -> None:
        self.bar.status = status
        self.bar.refresh()

    def update(self, line: str) -> None:
        update = self._take(line)
        if update is None:
            return
        self.bar.n = round(_FRACTION_STEPS * fraction_done(update, self.train_cap_s))
        self._show(self._text())

    def close(self, run: Any) -> None:
        if run.status == "pass":
            self.bar.n = _FRACTION_STEPS
        self._show(run_summary(run))
        self.bar.close()


def progress_factory(stream: TextIO | None = None, *, tty: bool | None = None, interval_s: float = 10.0):
    """A reproduce.ProgressFactory writing to `stream` (default stderr): tqdm bars on a terminal, else plain lines."""
    out = stream if stream is not None else sys.stderr
    use_bars = tty if tty is not None else bool(getattr(out, "isatty", lambda: False)())

    def start(seed: int, index: int, count: int, time_limit_s: float, train_cap_s: float | None):
        if use_bars:
            return TqdmSeedProgress(seed, index, count, time_limit_s, train_cap_s, stream=out)
        return PlainSeedProgress(seed, index, count, time_limit_s, train_cap_s, stream=out, interval_s=interval_s)

    return start

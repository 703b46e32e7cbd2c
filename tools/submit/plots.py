"""Figures for records and the leaderboard, rendered to PNG bytes (pure: data in, bytes out).

Rendering is deterministic so regenerating the leaderboard does not churn binary files in git: a fresh
Figure per call (no pyplot global state), the default style whatever the user's matplotlibrc says, fixed
size and dpi, and no metadata that changes between runs (the "Software" stamp carries the matplotlib version).
Callers decide whether to write; see tools.submit.leaderboard.write_if_changed.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from tools.records.model import ParsedLog

_DPI = 100
_PNG_METADATA = {"Software": None}


@dataclass(frozen=True)
class ProgressPoint:
    """One accepted record on a track's progression."""

    date: dt.date
    val_bpb: float
    label: str  # the record's folder name


def _figure(width_in: float, height_in: float):
    # Imported here: matplotlib costs ~0.5 s to import and most commands never draw.
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata=_PNG_METADATA)
    return buffer.getvalue()


def _default_style():
    import matplotlib.style

    return matplotlib.style.context("default")


def render_training_curves(logs: Sequence[ParsedLog], title: str) -> bytes:
    """Validation bpb and training loss per step, one line per seed (logs sorted by seed for stable colours)."""
    ordered = sorted(logs, key=lambda log: (log.seed is None, log.seed or 0, log.path))
    with _default_style():
        figure = _figure(10, 4)
        bpb_axes, loss_axes = figure.subplots(1, 2)
        for log in ordered:
            label = f"seed {log.seed}" if log.seed is not None else log.path
            val_points = [(p.step, p.val_bpb) for p in log.curve if p.val_bpb is not None]
            train_points = [(p.step, p.train_loss) for p in log.curve if p.train_loss is not None]
            if val_points:
                bpb_axes.plot(*zip(*val_points, strict=True), marker="o", markersize=3, label=label)
            if train_points:
                loss_axes.plot(*zip(*train_points, strict=True), linewidth=1, label=label)
        bpb_axes.set(title="validation bits per byte", xlabel="step", ylabel="val_bpb")
        loss_axes.set(title="training loss", xlabel="step", ylabel="train_loss (nats)")
        for axes in (bpb_axes, loss_axes):
            axes.grid(True, alpha=0.3)
            if axes.lines:
                axes.legend(loc="upper right", fontsize="small")
        figure.suptitle(title)
        figure.tight_layout()
        return _png_bytes(figure)


def render_progress(points: Sequence[ProgressPoint], title: str) -> bytes:
    """The track's state of the art over time: a step line through the accepted records' mean val_bpb."""
    ordered = sorted(points, key=lambda p: (p.date, p.label))
    with _default_style():
        import matplotlib.dates as mdates

        figure = _figure(8, 4)
        axes = figure.subplots()
        if ordered:
            dates = [mdates.date2num(dt.datetime.combine(p.date, dt.time())) for p in ordered]
            values = [p.val_bpb for p in ordered]
            # Extend the last SOTA flat for a day so a single record still draws a visible step.
            axes.plot([*dates, dates[-1] + 1], [*values, values[-1]], drawstyle="steps-post", linewidth=2)
            axes.plot(dates, values, "o")
            for x, point in zip(dates, ordered, strict=True):
                axes.annotate(point.label, (x, point.val_bpb), textcoords="offset points", xytext=(4, 4), fontsize=7)
            axes.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
            axes.xaxis.set_major_locator(mdates.AutoDateLocator())
        axes.set(title=title, xlabel="date", ylabel="val_bpb (mean over seeds)")
        axes.grid(True, alpha=0.3)
        figure.autofmt_xdate()
        figure.tight_layout()
        return _png_bytes(figure)

"""Figures for records and the leaderboard, rendered to PNG bytes (pure: data in, bytes out).

Rendering is deterministic so regenerating the leaderboard does not churn binary files in git: a fresh
Figure per call (no pyplot global state), the default style whatever the user's matplotlibrc says, fixed
size and dpi, and no metadata that changes between runs (the "Software" stamp carries the matplotlib version).
Callers decide whether to write; see tools.submit.leaderboard.write_if_changed. render_* return the PNG bytes;
draw_* return the Figure they render (drawn in whatever style is active: render_* apply the default one).
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
    std: float | None = None  # over the record's seeds: drawn as an error bar


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


def _seed_order(logs: Sequence[ParsedLog]) -> list[ParsedLog]:
    return sorted(logs, key=lambda log: (log.seed is None, log.seed or 0, log.path))


def _label(log: ParsedLog) -> str:
    return f"seed {log.seed}" if log.seed is not None else log.path


def _final_bpb(log: ParsedLog) -> float | None:
    points = [p.val_bpb for p in log.curve if p.val_bpb is not None]
    return log.val_bpb if log.val_bpb is not None else (points[-1] if points else None)


def draw_training_curves(logs: Sequence[ParsedLog], title: str):
    """Left: loss per token, training as a line and validation as markers on the same scale (nats), so a run that
    validated only at its end still shows its real curve. Right: validation bits per byte per step when the runs
    validated during training; else each seed's final score around their mean (a curve of one point is a dot)."""
    ordered = _seed_order(logs)
    figure = _figure(11, 4.2)
    loss_axes, bpb_axes = figure.subplots(1, 2)
    curves = any(sum(p.val_bpb is not None for p in log.curve) >= 2 for log in ordered)
    finals: list[tuple[str, float, str]] = []
    for index, log in enumerate(ordered):
        colour = f"C{index % 10}"
        train = [(p.step, p.train_loss) for p in log.curve if p.train_loss is not None]
        val_loss = [(p.step, p.val_loss) for p in log.curve if p.val_loss is not None]
        val_bpb = [(p.step, p.val_bpb) for p in log.curve if p.val_bpb is not None]
        if train:
            loss_axes.plot(*zip(*train, strict=True), linewidth=1, color=colour, label=_label(log))
        if val_loss:
            loss_axes.plot(*zip(*val_loss, strict=True), "o--", markersize=5, linewidth=0.8, color=colour)
        if curves and val_bpb:
            bpb_axes.plot(*zip(*val_bpb, strict=True), "o-", markersize=4, linewidth=1, color=colour, label=_label(log))
        final = _final_bpb(log)
        if final is not None:
            finals.append((_label(log), final, colour))
    loss_axes.set(title="loss per token (lines: training, dots: validation)", xlabel="step",
                  ylabel="cross-entropy (nats per token)")  # fmt: skip
    if curves:
        bpb_axes.set(title="validation bits per byte", xlabel="step", ylabel="val_bpb (lower is better)")
    elif finals:
        for x, (_, value, colour) in enumerate(finals):
            bpb_axes.plot([x], [value], "o", markersize=7, color=colour)
        mean = sum(v for _, v, _ in finals) / len(finals)
        bpb_axes.axhline(mean, linestyle="--", color="grey", linewidth=1, label=f"mean {mean:.4f}")
        bpb_axes.set_xticks(range(len(finals)), [name for name, _, _ in finals])
        bpb_axes.set_xlim(-0.5, len(finals) - 0.5)
        bpb_axes.margins(y=0.25)  # keep the extreme seeds clear of the frame and the legend
        bpb_axes.set(title="final val_bpb per seed (no validation during training)", ylabel="val_bpb (lower is better)")
    for axes in (loss_axes, bpb_axes):
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="best", fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def render_training_curves(logs: Sequence[ParsedLog], title: str) -> bytes:
    """curves.png: the training and validation curves of a record's seeds (sorted by seed for stable colours)."""
    with _default_style():
        return _png_bytes(draw_training_curves(logs, title))


def date_ticks(dates: Sequence[dt.date], max_ticks: int = 8) -> list[dt.date]:
    """Tick positions for a date axis: only dates the records carry (records are dated by day, so hourly ticks
    would repeat one label), first and last always, none closer than 1/max_ticks of the span."""
    distinct = sorted(set(dates))
    if len(distinct) <= 2:
        return distinct
    min_gap = (distinct[-1] - distinct[0]).days / max_ticks
    ticks = [distinct[0]]
    for day in distinct[1:-1]:
        if (day - ticks[-1]).days >= min_gap and (distinct[-1] - day).days >= min_gap:
            ticks.append(day)
    return [*ticks, distinct[-1]]


def draw_progress(points: Sequence[ProgressPoint], title: str):
    import matplotlib.dates as mdates

    ordered = sorted(points, key=lambda p: (p.date, p.label))
    figure = _figure(8, 4.2)
    axes = figure.subplots()
    if ordered:
        dates = [mdates.date2num(p.date) for p in ordered]
        values = [p.val_bpb for p in ordered]
        # The SOTA holds until the next record: a step line, extended a day so a single record still draws a step.
        axes.plot([*dates, dates[-1] + 1], [*values, values[-1]], drawstyle="steps-post", linewidth=2)
        spread = [p.std or 0.0 for p in ordered]
        label = "mean ± std over seeds" if any(p.std is not None for p in ordered) else "mean over seeds"
        axes.errorbar(dates, values, yerr=spread, fmt="o", capsize=4, label=label)
        for x, point in zip(dates, ordered, strict=True):
            axes.annotate(point.label, (x, point.val_bpb), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ticks = date_ticks([p.date for p in ordered])
        axes.set_xticks([mdates.date2num(day) for day in ticks], [day.isoformat() for day in ticks])
        span = max(dates[-1] + 1 - dates[0], 1.0)
        axes.set_xlim(dates[0] - 0.08 * span, dates[-1] + 1 + 0.25 * span)  # room for the last label
        axes.legend(loc="upper right", fontsize="small")
        figure.autofmt_xdate()
    axes.set(title=title, xlabel="record date", ylabel="val_bpb (lower is better)")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def render_progress(points: Sequence[ProgressPoint], title: str) -> bytes:
    """progress.png: the track's state of the art over time, each record's mean val_bpb with its seed spread."""
    with _default_style():
        return _png_bytes(draw_progress(points, title))

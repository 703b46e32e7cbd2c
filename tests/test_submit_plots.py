"""Figures are deterministic PNGs: same data -> same bytes, no version stamp, user style ignored."""

from __future__ import annotations

import datetime as dt

import matplotlib

from tools.records.model import CurvePoint, ParsedLog
from tools.submit.plots import (
    ProgressPoint,
    date_ticks,
    draw_progress,
    draw_training_curves,
    render_progress,
    render_training_curves,
)


def _log(seed: int, offset: float) -> ParsedLog:
    curve = tuple(
        CurvePoint(step=s, train_loss=4.0 - s / 100 + offset, val_bpb=(3.0 - s / 100 + offset) if s % 50 == 0 else None)
        for s in range(0, 201, 10)
    )
    return ParsedLog(path=f"train_seed{seed}.log", code="", seed=seed, curve=curve)


def test_training_curves_are_byte_identical_and_unstamped():
    logs = [_log(1337, 0.01), _log(42, 0.0)]
    first = render_training_curves(logs, "a record")
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert render_training_curves(list(reversed(logs)), "a record") == first  # order of logs does not matter
    assert b"matplotlib" not in first.lower()  # no Software: matplotlib x.y.z chunk
    assert render_training_curves(logs, "another title") != first


def test_user_style_does_not_leak_into_the_figures():
    points = [ProgressPoint(dt.date(2026, 1, 10), 1.5, "base"), ProgressPoint(dt.date(2026, 1, 20), 1.4, "better")]
    plain = render_progress(points, "progress")
    with matplotlib.rc_context({"lines.linewidth": 9, "axes.facecolor": "black"}):
        assert render_progress(points, "progress") == plain
    assert render_progress([], "progress").startswith(b"\x89PNG")
    assert render_progress(points[:1], "progress") != plain


def _labels(axes) -> list[str]:
    axes.figure.canvas.draw()
    return [label.get_text() for label in axes.get_xticklabels()]


def test_date_ticks_are_distinct_record_dates():
    day = dt.date(2026, 1, 10)
    assert date_ticks([day, day, day]) == [day]
    assert date_ticks([day, day + dt.timedelta(1)]) == [day, day + dt.timedelta(1)]
    many = [day + dt.timedelta(d) for d in (0, 1, 2, 3, 30, 31, 200, 365)]
    ticks = date_ticks(many)
    assert ticks[0] == many[0] and ticks[-1] == many[-1] and len(ticks) == len(set(ticks)) <= 8
    assert all((b - a).days >= 365 / 8 for a, b in zip(ticks, ticks[1:], strict=False))  # no two labels overlap


def test_progress_plot_has_distinct_date_labels_and_error_bars():
    same_day = [ProgressPoint(dt.date(2026, 11, 22), 1.96, "base", 0.004)]
    few_days = [ProgressPoint(dt.date(2026, 1, d), 1.6 - d / 100, f"r{d}", 0.01) for d in (10, 11, 13)]
    for points in (same_day, few_days):
        axes = draw_progress(points, "progress").axes[0]
        labels = [text for text in _labels(axes) if text]
        assert labels == sorted({p.date.isoformat() for p in points}), labels  # one label per record date
        (bars,) = axes.containers  # the seeds' spread
        segments = bars.lines[2][0].get_segments()
        assert [round(abs(seg[1][1] - seg[0][1]) / 2, 6) for seg in segments] == [p.std for p in points]


def test_curves_show_validation_during_training_as_a_curve():
    validated = draw_training_curves([_log(42, 0.0)], "r")
    loss_axes, bpb_axes = validated.axes
    assert [len(line.get_xdata()) for line in bpb_axes.lines] == [5]  # steps 0, 50, ..., 200: a curve
    assert bpb_axes.get_title() == "validation bits per byte"


def test_curves_of_runs_validated_only_at_the_end_show_the_seed_spread():
    def end_only(seed, bpb):
        curve = tuple(CurvePoint(step=s, train_loss=4.0 - s / 100) for s in range(1, 201, 10))
        return ParsedLog(path=f"s{seed}.log", code="", seed=seed, val_bpb=bpb,
                         curve=(*curve, CurvePoint(step=200, val_loss=2.9, val_bpb=bpb)))  # fmt: skip

    figure = draw_training_curves([end_only(1337, 1.96), end_only(42, 1.97)], "r")
    loss_axes, bpb_axes = figure.axes
    assert len(loss_axes.lines) == 4  # per seed: the training line and its validation marker, on one scale
    assert _labels(bpb_axes) == ["seed 42", "seed 1337"]
    assert [line.get_ydata()[0] for line in bpb_axes.lines[:2]] == [1.97, 1.96]
    assert "no validation during training" in bpb_axes.get_title()

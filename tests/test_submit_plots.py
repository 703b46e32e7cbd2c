"""Figures are deterministic PNGs: same data -> same bytes, no version stamp, user style ignored."""

from __future__ import annotations

import datetime as dt

import matplotlib

from tools.records.model import CurvePoint, ParsedLog
from tools.submit.plots import ProgressPoint, render_progress, render_training_curves


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

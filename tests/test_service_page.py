"""The status page's plot (tools/service/plot_svg.py) and its place in the page (tools/service/page.py), pure: no
server. Hostile names never reach the markup raw; 0 points, 1 point, equal values and many series give a valid SVG
with one line per participant that has a score."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from tools.service.config import ServiceConfig
from tools.service.outcome import FAILED, QUEUED, SUCCEEDED, TIMED_OUT
from tools.service.page import plot_series, render_status_page
from tools.service.plot_svg import colour, nice_step, series_svg, x_axis, y_axis
from tools.service.store import Run

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>&\"quote\x01"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, so no unescaped markup got through
    assert root.tag == SVG + "svg"
    return root


def lines(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}polyline")


def texts(root: ET.Element) -> str:
    return " ".join("".join(node.itertext()) for node in root.iter(SVG + "text"))


def run(owner: str, number: int, status: str, val_bpb: float | None = None, name: str | None = None) -> Run:
    return Run(id=hash((owner, number)) & 0xFFFF, owner=owner, number=number, name=name, status=status, code="x",
               code_sha256="0" * 64, idempotency_key=None, limit_s=60.0, created_at=1_700_000_000.0 + number,
               started_at=None, finished_at=None, val_bpb=val_bpb, reason=None, result=None)


def test_empty_gives_an_svg_saying_so():
    for series in ({}, {"alice": []}):
        svg = series_svg(series)
        root = parse(svg)
        assert not lines(root) and "No finished runs yet." in texts(root)


def test_one_point_gets_a_line_a_dot_ticks_and_axis_labels():
    root = parse(series_svg({"alice": [(3, 1.25)]}))
    (line,) = lines(root)
    assert line.get("data-participant") == "alice" and len(line.get("points").split()) == 1
    assert len(root.findall(f".//{SVG}circle")) == 2  # the point and its legend marker
    words = texts(root)
    assert "run number" in words and "val_bpb" in words and "1.25" in words and "best 1.2500" in words
    assert "3" in [t.text for t in root.iter(SVG + "text")]  # the run's x tick


def test_equal_values_and_a_single_run_number_still_span_the_axes():
    root = parse(series_svg({"a": [(0, 2.0), (0, 2.0)], "b": [(0, 2.0)]}))
    for line in lines(root):
        for pair in line.get("points").split():
            x, y = map(float, pair.split(","))
            assert math.isfinite(x) and math.isfinite(y)
    low, high, ticks, _ = y_axis([2.0, 2.0])
    assert low < 2.0 < high and len(ticks) >= 3
    x_low, x_high, x_ticks = x_axis([0])
    assert x_low < 0 < x_high and x_ticks == [0]


def test_many_series_get_one_line_each_and_distinct_colours():
    series = {f"p{i}": [(n, 1.0 + i / 10 + n / 100) for n in range(5)] for i in range(14)}
    root = parse(series_svg(series))
    found = lines(root)
    assert [line.get("data-participant") for line in found] == list(series)
    strokes = [line.get("stroke") for line in found]
    assert len(set(strokes)) == len(strokes) == 14 and colour(0) != colour(10)
    assert all(f"p{i} " in texts(root) for i in range(14))  # each in the legend


def test_failed_runs_are_marks_on_the_axis_not_points():
    root = parse(series_svg({"alice": [(0, 1.5), (1, None), (2, float("nan")), (3, 1.4)], "bob": [(0, None)]}))
    (line,) = lines(root)  # bob has no score: marks, no line
    assert len(line.get("points").split()) == 2
    marks = [p for p in root.iter(SVG + "path") if p.get("class") == "no-score"]
    assert len(marks) == 3 and "failed, no score" in texts(root) and "no score yet" in texts(root)


def test_hostile_names_are_escaped_everywhere():
    svg = series_svg({HOSTILE: [(0, 1.0), (1, None)], "x' onload='alert(1)": [(0, 2.0)]})
    assert "<script" not in svg and "\x01" not in svg and "onload='" not in svg
    root = parse(svg)
    assert [line.get("data-participant") for line in lines(root)] == [HOSTILE.replace("\x01", "\ufffd"),
                                                                       "x' onload='alert(1)"]


def test_nice_steps():
    assert nice_step(1.0, 5) == 0.2 and nice_step(0.04, 5) == 0.01 and nice_step(10, 8) == 2
    low, high, ticks, decimals = y_axis([1.83, 2.41])
    assert low <= 1.83 and high >= 2.41 and decimals == 1 and ticks[0] == low


def test_plot_series_keeps_finished_runs_by_participant():
    runs = [run("bob", 0, SUCCEEDED, 2.0), run("alice", 1, FAILED), run("alice", 0, SUCCEEDED, 1.5),
            run("alice", 2, TIMED_OUT), run("alice", 3, QUEUED), run("bob", 1, SUCCEEDED, None)]
    assert plot_series(runs) == {"alice": [(0, 1.5), (1, None), (2, None)], "bob": [(0, 2.0), (1, None)]}


def test_the_page_contains_the_plot_and_escapes_names(tmp_path):
    config = ServiceConfig(state_dir=tmp_path, dataset_dir=tmp_path)
    recent = [run(HOSTILE, 1, SUCCEEDED, 1.2, name="<b>n</b>"), run(HOSTILE, 0, FAILED), run("bob", 0, SUCCEEDED, 1.9)]
    page = render_status_page([run("bob", 1, QUEUED)], recent, config, {})
    assert page.count("<svg") == 1 and "</svg>" in page and page.count("<polyline") == 2
    assert "<script" not in page and "&lt;script&gt;" in page and "<b>n" not in page
    assert page.index("Best per participant") < page.index("<svg") < page.index("<h2>Queue")
    empty = render_status_page([], [], config, {})
    assert "<svg" in empty and "No finished runs yet." in empty


def test_the_page_lists_record_submissions_escaped():
    from tools.service.store import Submission

    hostile = Submission(id=1, owner="<b>eve</b>", number=0, source_number=3, status="judged",
                         details={"author": "eve"}, created_at=1_796_000_000.0, finished_at=None,
                         reason="the judge failed 1 check(s): <script>", record_path="/x/2026-12-03_eve",
                         verdict={"ok": False})
    page = render_status_page([], [], ServiceConfig(state_dir=Path("/s"), dataset_dir=Path("/d")), {}, [hostile])
    assert "<h2>Records</h2>" in page and "sub-0" in page and "run-3" in page and "2026-12-03_eve" in page
    assert "<b>eve</b>" not in page and "<script>" not in page and "&lt;script&gt;" in page
    empty = render_status_page([], [], ServiceConfig(state_dir=Path("/s"), dataset_dir=Path("/d")), {})
    assert "No record submissions yet" in empty

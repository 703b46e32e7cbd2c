"""The status page at `/` (pure HTML from the store's rows): the queue, recent runs with their scores, each
participant's best, and a plot of val_bpb over each participant's runs (inline SVG from tools/service/plot_svg.py;
no script, nothing fetched). Everything shown is escaped; code and output are never shown here."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.service.config import ServiceConfig
from tools.service.outcome import FINISHED, SUCCEEDED
from tools.service.plot_svg import Point, series_svg
from tools.service.store import Run, Submission

STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}"
         "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;white-space:nowrap}th{background:#f3f3f3}"
         ".reason{white-space:normal}"
         ".succeeded{color:#070}.failed,.timed_out{color:#a00}.running{color:#05a}.flag{color:#a60}"
         ".note{color:#666;font-size:.9em}svg.plot{display:block;margin-bottom:.5em}")


def _when(epoch: float | None) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch else ""


def _bpb(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else ""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def plot_series(runs: Sequence[Run]) -> dict[str, list[Point]]:
    """Participant -> (run number, the service's val_bpb, or None when the run finished without one), participants
    by name (so their colours stay put between refreshes); queued and running runs are left out."""
    series: dict[str, list[Point]] = {}
    for r in sorted(runs, key=lambda r: (r.owner, r.number)):
        if r.status in FINISHED:
            series.setdefault(r.owner, []).append((r.number, r.val_bpb if r.status == SUCCEEDED else None))
    return dict(sorted(series.items()))


def _records_table(submissions: Sequence[Submission]) -> str:
    e = html.escape
    rows = [[e(s.owner), e(s.label), e(f"run-{s.source_number}"), f"<span class='{e(s.status)}'>{e(s.status)}</span>",
             f"<span class='reason'>{e((s.reason or 'its seed runs are queued or running')[:200])}</span>",
             e(Path(s.record_path).name if s.record_path else ""), _when(s.created_at)] for s in submissions]
    return _table(["participant", "submission", "from", "status", "verdict", "record folder", "submitted (UTC)"],
                  rows, "No record submissions yet (POST /runs/{run_id}/submit).")


def render_status_page(queue: Sequence[Run], recent: Sequence[Run], config: ServiceConfig,
                       running: Mapping[int, str], submissions: Sequence[Submission] = ()) -> str:
    e = html.escape
    queued = [[str(i), e(r.owner), e(r.label), e(r.name or ""), _when(r.created_at)]
              for i, r in enumerate(queue, start=1)]
    runs = []
    for r in recent:
        reported = (r.result or {}).get("reported_val_bpb")
        flag = " <span class='flag'>(differs)</span>" if (r.result or {}).get("reported_mismatch") else ""
        runs.append([e(r.owner), e(r.label), e(r.name or ""), f"<span class='{e(r.status)}'>{e(r.status)}</span>",
                     _bpb(r.val_bpb), _bpb(reported) + flag,
                     f"<span class='reason'>{e((r.reason or '')[:160])}</span>", _when(r.created_at)])
    best: dict[str, Run] = {}
    for r in recent:
        if r.status == SUCCEEDED and r.val_bpb is not None and (r.owner not in best or r.val_bpb < best[r.owner].val_bpb):
            best[r.owner] = r
    leaders = [[str(i), e(r.owner), _bpb(r.val_bpb), e(r.label), e(r.name or "")]
               for i, r in enumerate(sorted(best.values(), key=lambda r: r.val_bpb), start=1)]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='20'>"
        f"<title>run service</title><style>{STYLE}</style></head><body>"
        "<h1>Parameter golf run service</h1>"
        f"<p>{config.workers} worker(s); {len(running)} running; {len(queue)} queued. Training budget "
        f"{config.time_budget_s:g} s per run; val_bpb is computed by the service (the code's own number is shown "
        "as reported). API: <a href='/docs'>/docs</a>.</p>"
        "<h2>Best per participant</h2>"
        + _table(["#", "participant", "val_bpb", "run", "name"], leaders, "No scored runs yet.")
        + "<h2>val_bpb over runs</h2>"
        + series_svg(plot_series(recent))
        + f"<p class='note'>Finished runs among the {len(recent)} most recent; a line per participant through its "
        "scored runs; hover a point for its run.</p>"
        + "<h2>Queue</h2>"
        + _table(["position", "participant", "run", "name", "submitted (UTC)"], queued, "The queue is empty.")
        + "<h2>Records</h2>"
        + _records_table(submissions)
        + "<h2>Recent runs</h2>"
        + _table(["participant", "run", "name", "status", "val_bpb", "reported", "reason", "submitted (UTC)"], runs,
                 "No runs yet.")
        + "</body></html>"
    )

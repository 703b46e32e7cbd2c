"""Render a Report for people (a table of checks, then the statistics) or for machines (JSON).

Shared by every `verify` command that returns CheckResults. Pure functions: Report in, text out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from tools.records.model import CheckResult, Report

STATUS_MARK = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "skip"}
# The statistics shown under the table, in this order, when present.
STATS_ORDER = (
    "metric", "n", "mean", "std", "sota_source", "sota_mean", "min_improvement", "threshold", "margin", "t", "df",
    "p", "alpha", "seeds_needed", "welch",
)  # fmt: skip


def json_safe(value: Any) -> Any:
    """Replace NaN/inf (not JSON) with None and make mappings/tuples plain, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def report_json(report: Report) -> dict[str, Any]:
    """`{"ok", "record", "checks": [{"id", "status", "message"}], "stats"}` with only JSON values."""
    return json_safe(report.to_json())


def render_json(report: Report) -> str:
    return json.dumps(report_json(report), indent=2, allow_nan=False)


def render_checks(checks: Iterable[CheckResult]) -> str:
    """A fixed-width table: check id, status, message (one line each)."""
    checks = list(checks)
    if not checks:
        return "(no checks)"
    width = max(len("check"), *(len(c.id) for c in checks))
    lines = [f"{'check':<{width}}  status  message", f"{'-' * width}  ------  {'-' * 7}"]
    for check in checks:
        message = " ".join(check.message.split())  # a message is one line, whatever a checker wrote
        lines.append(f"{check.id:<{width}}  {STATUS_MARK.get(check.status, check.status):<6}  {message}")
        problems = check.evidence.get("problems") if isinstance(check.evidence, Mapping) else None
        if isinstance(problems, (list, tuple)) and len(problems) > 1:
            # The message names the first problem; show the rest beneath it so nothing needs --json to be seen.
            lines += [f"{'':<{width}}          - {' '.join(str(p).split())}" for p in problems[1:]]
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items() if not isinstance(v, (list, tuple)))
    return str(value)


def render_stats(stats: Mapping[str, Any]) -> str:
    shown = [key for key in STATS_ORDER if stats.get(key) is not None]
    if not shown:
        return ""
    width = max(len(key) for key in shown)
    return "\n".join(f"  {key:<{width}}  {_show(stats[key])}" for key in shown)


def render_table(report: Report) -> str:
    """The report as people read it: record, verdict, the checks, then the statistics."""
    failed = [c.id for c in report.checks if c.status == "fail"]
    verdict = "PASSED" if report.ok else f"FAILED ({', '.join(failed)})"
    parts = [f"record: {report.record}", f"verdict: {verdict}", "", render_checks(report.checks)]
    stats = render_stats(report.stats)
    if stats:
        parts += ["", "statistics:", stats]
    return "\n".join(parts)

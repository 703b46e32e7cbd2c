"""Conformance of the judge with the public competition: `verify audit --ruleset parameter-golf` on a snapshot of
openai/parameter-golf, compared with what happened to each record (bench/conformance/labels.toml).

    python bench/bench_conformance.py PATH [--labels bench/conformance/labels.toml] [--json]

PATH is a clone of the public repository (a git directory or a work tree: records removed from it later are
taken from the commit where they last existed) or a `records/` folder (then only the records in it are judged).
It prints one row per labelled record (what happened to it, what the judge says, agreement), the false alarms and
missed defects per check id, and the targets:
- >= 95% of the accepted-and-listed records without a documented defect pass every non-historical check;
- every documented defect fails on the check that owns it;
- no record makes the judge crash.
Exit 0 when every target is met, 1 otherwise, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.records.rulesets import load_ruleset  # noqa: E402
from tools.verify.audit import AuditEntry, audit_tree  # noqa: E402

DEFAULT_LABELS = REPO / "bench" / "conformance" / "labels.toml"
# Checks that judge history rather than the record itself: their verdict is reported, never counted against it.
HISTORICAL_CHECKS = frozenset({"significance"})
CLEAN_PASS_TARGET = 0.95


@dataclass
class Row:
    record: str
    outcome: str
    expected: tuple[str, ...]  # the checks that must fail (documented defects)
    failed: tuple[str, ...] = ()
    error: str | None = None
    missed: tuple[str, ...] = ()  # documented defects the judge passed
    extra: tuple[str, ...] = ()  # failures no label explains (false alarms, or undocumented defects)
    messages: dict[str, str] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return self.error is None and not self.missed and not self.extra


def load_labels(path: Path) -> tuple[dict, list[dict]]:
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    return document.get("snapshot", {}), document.get("record", [])


def _git_dir(path: Path) -> Path | None:
    for candidate in (path, path / ".git"):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def _extract(git_dir: Path, commit: str, folder: str, into: Path) -> None:
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", commit, folder], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def materialize(path: Path, labels: list[dict], scratch: Path) -> Path:
    """A records tree holding the snapshot's records and every removed record at its last commit."""
    git_dir = _git_dir(path)
    if git_dir is None:
        return path if path.name == "records" or not (path / "records").is_dir() else path / "records"
    commit = "HEAD"
    _extract(git_dir, commit, "records", scratch)
    for label in labels:
        if label.get("outcome") == "removed" and label.get("last_commit"):
            target = scratch / "records" / label["path"]
            if not target.exists():
                _extract(git_dir, label["last_commit"], f"records/{label['path']}", scratch)
    return scratch / "records"


def compare(labels: list[dict], entries: dict[str, AuditEntry]) -> list[Row]:
    rows = []
    for label in labels:
        expected = tuple(sorted({defect["check"] for defect in label.get("defects", [])}))
        row = Row(record=label["path"], outcome=label.get("outcome", "?"), expected=expected)
        entry = entries.get(label["path"])
        if entry is None:
            row.error = "not in the snapshot"
        elif entry.error is not None:
            row.error = entry.error
        else:
            failing = {c.id: c.message for c in entry.checks if c.status == "fail" and c.id not in HISTORICAL_CHECKS}
            row.failed = tuple(sorted(failing))
            row.messages = failing
            owned_elsewhere = {"tokenizer_bytes", "tokenizer_roundtrip"}  # verify tokenizer's, not verify record's
            row.missed = tuple(check for check in expected if check not in failing and check not in owned_elsewhere)
            row.extra = tuple(check for check in row.failed if check not in expected)
        rows.append(row)
    return rows


def summarize(rows: list[Row]) -> dict:
    clean = [row for row in rows if row.outcome == "listed" and not row.expected and row.error != "not in the snapshot"]
    clean_passed = [row for row in clean if not row.failed and row.error is None]
    defects = [(row, check) for row in rows for check in row.expected if row.error != "not in the snapshot"
               and check not in {"tokenizer_bytes", "tokenizer_roundtrip"}]
    caught = [(row, check) for row, check in defects if check in row.failed]
    extra = Counter(check for row in rows for check in row.extra)
    missed = Counter(check for row in rows for check in row.missed)
    crashes = [row for row in rows if row.error and row.error != "not in the snapshot"]
    return {
        "records": len(rows),
        "clean_listed": len(clean), "clean_listed_passing": len(clean_passed),
        "clean_pass_rate": len(clean_passed) / len(clean) if clean else None,
        "defects": len(defects), "defects_caught": len(caught),
        "extra_failures_by_check": dict(extra), "missed_by_check": dict(missed),
        "crashes": len(crashes),
        "targets_met": bool(clean) and len(clean_passed) / len(clean) >= CLEAN_PASS_TARGET
        and len(caught) == len(defects) and not crashes,
    }


def render(rows: list[Row], summary: dict, seconds: float) -> str:
    width = max(len("record"), *(len(row.record) for row in rows))
    lines = [f"{'record':<{width}}  {'outcome':<8}  {'documented defects':<28}  {'judge fails':<34}  agrees",
             f"{'-' * width}  {'-' * 8}  {'-' * 28}  {'-' * 34}  ------"]
    for row in rows:
        judge = row.error if row.error else (", ".join(row.failed) or "-")
        lines.append(f"{row.record:<{width}}  {row.outcome:<8}  {', '.join(row.expected) or '-':<28}  "
                     f"{judge[:34]:<34}  {'yes' if row.agrees else 'NO'}")
    lines += ["", "disagreements:"]
    for row in rows:
        if row.agrees:
            continue
        if row.error:
            lines.append(f"  {row.record}: {row.error}")
        for check in row.missed:
            lines.append(f"  {row.record}: documented {check} defect not caught")
        for check in row.extra:
            lines.append(f"  {row.record}: {check} fails with no documented defect: {row.messages[check][:160]}")
    rate = summary["clean_pass_rate"]
    lines += ["", f"clean listed records passing: {summary['clean_listed_passing']}/{summary['clean_listed']}"
                  f" ({rate:.1%}, target >= {CLEAN_PASS_TARGET:.0%})" if rate is not None else "no clean listed records",
              f"documented defects caught by their check: {summary['defects_caught']}/{summary['defects']}",
              f"crashes: {summary['crashes']}",
              f"failures without a documented defect, by check: {summary['extra_failures_by_check'] or '-'}",
              f"judged in {seconds:.1f} s; targets {'met' if summary['targets_met'] else 'NOT met'}"]
    return "\n".join(lines)


def run(path: Path, labels_path: Path) -> tuple[list[Row], dict, float]:
    snapshot, labels = load_labels(labels_path)
    tracks = load_ruleset("parameter-golf")
    with tempfile.TemporaryDirectory(prefix="pg-conformance-") as scratch:
        tree = materialize(path, labels, Path(scratch))
        started = time.perf_counter()
        entries = {entry.record: entry for entry in audit_tree(tree, tracks)}
        seconds = time.perf_counter() - started
        shutil.rmtree(Path(scratch) / "records", ignore_errors=True)
    rows = compare(labels, entries)
    return rows, summarize(rows), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("path", type=Path, help="a clone of openai/parameter-golf, or its records/ folder")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="labels.toml (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the rows and the summary as JSON")
    args = parser.parse_args(argv)
    if not args.path.exists() or not args.labels.is_file():
        print(f"error: {args.path if not args.path.exists() else args.labels}: not found", file=sys.stderr)
        return 2
    rows, summary, seconds = run(args.path, args.labels)
    if args.json:
        print(json.dumps({"summary": summary, "seconds": seconds, "rows": [row.__dict__ for row in rows]}, indent=1,
                         default=list))
    else:
        print(render(rows, summary, seconds))
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())

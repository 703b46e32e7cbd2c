"""`verify record PATH`: the judge's static and statistical checks on one record folder."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from tools.verify.commands.options import ruleset_option
from tools.verify.evidence import EVIDENCE_FILE


@click.command("record")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--against", type=float, default=None, metavar="BPB",
              help="Test significance against this SOTA value instead of the track's accepted chain.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@ruleset_option
def command(path: Path, against: float | None, as_json: bool, ruleset: str | None) -> None:
    """Check a record folder (records/<track>/<YYYY-MM-DD>_<name>/) without running any of its code.

    \b
    Checks (stable ids): files, schema, track, code_lines, artifact_bytes, train_time, eval_time,
    claims_match_logs, code_matches_logs, config_matches_logs, seeds_distinct, min_seeds, dataset,
    score_progression (warns only), significance.
    Each is pass / fail / warn / skip with a one-line message naming the file and value.

    \b
    Inputs: the folder (README.md, submission.json, train_gpt.py, one train_seed<SEED>.log per seed,
    optional final_model_seed<SEED>.int8.ptz); records/tracks.toml for the caps; the local dataset
    manifest (data/datasets/<dataset>/manifest.json, skipped when absent); the other records of the track,
    which give the SOTA the record must beat at its date (or --against BPB).
    Environment: PG_REPO_ROOT (the repository), PG_DATASETS_ROOT (the prepared datasets).

    \b
    significance: one-sided t-test of the seeds' val_bpb against SOTA - min_improvement (0.005), pass at
    p < alpha (0.01). The first record of a track has nothing to beat (skip).

    \b
    Output: a table of checks and the statistics (n, mean, std, t, df, p, threshold, margin, seeds needed);
    with --json: {"ok", "record", "checks": [{"id", "status", "message"}], "stats"}.

    \b
    Examples:
      verify record records/track_cpu_shakespeare/2026-03-20_baseline
      verify record records/track_10min_16mb/2026-04-01_wider --against 1.2194 --json
      verify record ../parameter-golf/records/track_10min_16mb/2026-03-17_NaiveBaseline --ruleset parameter-golf

    \b
    Judge evidence: when the folder has a verification.json, it is judged as the leaderboard judges it (bound to
    the files now, a judge commit, every check run in the sandbox, no failure) and reported after the table
    (JSON: "evidence"); evidence that keeps the record off the board fails the command too.

    \b
    Exit codes: 0 no check failed (warnings and skips allowed), 1 a check failed or the judge's evidence keeps
    the record out, 2 bad usage or an unreadable record (missing folder, not a folder, outside records/).
    """
    from tools.records.model import RecordError
    from tools.verify.checks.verdict import verify_record
    from tools.verify.evidence import evidence_report
    from tools.verify.report_format import render_json, render_table, report_json

    if against is not None and not math.isfinite(against):
        click.echo(f"error: --against: not a finite number: {against}", err=True)
        sys.exit(2)
    try:
        tracks = None
        if ruleset is not None:
            from tools.records.rulesets import load_ruleset

            tracks = load_ruleset(ruleset)
        report = verify_record(path, against=against, tracks=tracks, records_root=_records_root(path, ruleset))
    except RecordError as error:
        click.echo(f"error: {error.where}: {error.message}", err=True)
        sys.exit(2)
    evidence = evidence_report(report, path)  # the judge's verification.json, judged as the board judges it
    if as_json:
        click.echo(render_json(report) if evidence is None else json.dumps(
            {**report_json(report), "evidence": evidence}, indent=2, allow_nan=False))
    else:
        click.echo(render_table(report) + ("" if evidence is None else "\n\n" + _evidence_lines(evidence)))
    sys.exit(0 if report.ok and not (evidence and evidence["reasons"]) else 1)


def _evidence_lines(evidence: dict) -> str:
    lines = [f"judge evidence ({EVIDENCE_FILE}): {evidence['verified']}"]
    if evidence["provenance"]:
        lines.append(f"  {evidence['provenance']}")
    lines += [f"  NOT ACCEPTED: {reason}" for reason in evidence["reasons"]]
    return "\n".join(lines)


def _records_root(path: Path, ruleset: str | None) -> Path | None:
    """Our own records live under the repository's records/; with --ruleset a record may come from another tree
    (a checkout of the public repository), whose root is two levels above the record."""
    if ruleset is None:
        return None
    return path.resolve().parent.parent

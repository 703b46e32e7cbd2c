"""`submit record`: judge a record folder (or assemble one from logs), accept it, regenerate leaderboard.md."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import tempfile
from pathlib import Path

import click

GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")

VERDICT_LINES = {
    "record": "ACCEPTED as the new SOTA of {track}",
    "non-record": "ACCEPTED as a non-record entry of {track} (listed, not ranked)",
    "rejected": "REJECTED: nothing changed",
}


def _fail(where: str, message: str) -> None:
    click.echo(f"error: {where}: {message}", err=True)
    sys.exit(2)


def _parse_date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        _fail("--date", f"not a date (YYYY-MM-DD): {text!r}")


def _print_outcome(outcome, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(outcome.to_json(), indent=2, allow_nan=False))
        return
    from tools.verify.report_format import render_checks

    click.echo(f"record: {outcome.report.record}")
    click.echo(f"verdict: {VERDICT_LINES[outcome.verdict].format(track=outcome.track_id)}" + (" [dry run]" if outcome.dry_run else ""))
    click.echo(f"reason: {outcome.reason}")
    click.echo("")
    click.echo(render_checks(outcome.report.checks))
    click.echo("")
    if outcome.moved_to is not None:
        click.echo(f"the draft was not placed in records/; it is kept in {outcome.moved_to}")
    if outcome.accepted:
        board = outcome.leaderboard_path.name
        if outcome.dry_run:
            click.echo(f"{board} would change:" if outcome.leaderboard_changed else f"{board} would not change")
        else:
            click.echo(f"{board} updated:" if outcome.leaderboard_changed else f"{board} unchanged")
        if outcome.leaderboard_diff:
            click.echo(outcome.leaderboard_diff.rstrip("\n"))
    for warning in outcome.warnings:
        click.echo(f"warning: {warning}", err=True)


@click.command(name="record")
@click.argument("inputs", nargs=-1, metavar="FOLDER | LOG... | RUN_ID...")
@click.option("--from-logs", is_flag=True, help="INPUTS are training logs: assemble a new record folder from them.")
@click.option("--from-mlflow", is_flag=True, help="INPUTS are MLflow run ids of logs ingested by `submit track`.")
@click.option("--track", "track_id", metavar="TRACK", help="Track id for an assembled record (records/tracks.toml).")
@click.option("--name", help="Record name for an assembled record; its slug names the folder.")
@click.option("--author", help="Author for an assembled record.")
@click.option("--github-id", help="GitHub id for submission.json (default: the author).")
@click.option("--blurb", help="One paragraph for the README and submission.json.")
@click.option("--date", "date_text", metavar="YYYY-MM-DD", help="Record date (default: today).")
@click.option("--script", type=click.Path(dir_okay=False, path_type=Path),
              help="The script that produced the logs; must equal the code they embed byte for byte.")
@click.option("--dry-run", is_flag=True, help="Judge and show what would change (verdict, leaderboard diff); write nothing.")
@click.option("--no-track", is_flag=True, help="Do not record the verdict in MLflow.")
@click.option("--tracking-uri", metavar="URI", help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (verdict, reason, leaderboard diff, report).")
def command(inputs, from_logs, from_mlflow, track_id, name, author, github_id, blurb, date_text, script, dry_run,
            no_track, tracking_uri, as_json) -> None:  # fmt: skip
    """Judge a record and, if it passes, accept it and regenerate leaderboard.md.

    \b
    Two ways in:
      submit record records/<track>/<YYYY-MM-DD>_<name>        a folder already in records/
      submit record --from-logs LOG... --track T --name N --author A [--github-id G] [--blurb B] [--date D]
      submit record --from-mlflow RUN_ID... --track T --name N --author A ...

    \b
    --from-logs assembles records/<track>/<date>_<slug-of-name>/ from the logs: train_gpt.py (the code the
    logs embed; every log must embed the same code), train_seed<SEED>.log per log, the artifacts found at
    <log folder>/<RUN_ID>/final_model.int8.ptz (as final_model_seed<SEED>.int8.ptz), submission.json computed
    from the logs (means, sample std, per-seed results), a README skeleton and curves.png. It is built and
    judged in a hidden staging folder; only an accepted record is renamed into records/. A rejected draft goes
    to logs/rejected/<name>/ (the output says where). An existing destination folder is never overwritten.

    \b
    Judgement: every check of `verify record`; then
      record      all checks pass on a ranked track: the new SOTA of the track
      non-record  all pass but the t-test against SOTA (or the track is unranked): listed, not ranked
      rejected    a check failed: the failing checks are printed and nothing changes
    Then leaderboard.md (and records/<track>/progress.png) is regenerated from the record folders.
    The verdict is recorded as an MLflow run (experiment "verdicts") unless --no-track; a tracking
    failure is a warning, never a lost verdict.

    \b
    Examples:
      submit record records/track_cpu_shakespeare/2026-03-20_baseline --dry-run
      submit record --from-logs logs/a.txt logs/b.txt logs/c.txt --track track_cpu_shakespeare \\
          --name "Wider MLP" --author "Jane Doe" --github-id janedoe
      submit record --from-mlflow 3f2a... 9bc1... 77de... --track track_cpu_shakespeare --name x --author y

    \b
    Exit codes: 0 accepted (record or non-record; with --dry-run: would be), 1 rejected by a check,
    2 bad usage or unreadable input (one line: error: <where>: <what>).
    """
    from tools.records.model import RecordError

    assembling = from_logs or from_mlflow
    if from_logs and from_mlflow:
        _fail("--from-logs/--from-mlflow", "choose one")
    if not inputs:
        _fail("submit record", "give a record folder, or logs with --from-logs, or run ids with --from-mlflow")
    assembly_options = {"--track": track_id, "--name": name, "--author": author}
    if assembling:
        for option, value in assembly_options.items():
            if not value:
                _fail(option, f"required with {'--from-logs' if from_logs else '--from-mlflow'}")
    else:
        if len(inputs) != 1:
            _fail("submit record", f"one record folder expected, got {len(inputs)} arguments (logs need --from-logs)")
        given = [o for o, v in {**assembly_options, "--github-id": github_id, "--blurb": blurb, "--date": date_text,
                                "--script": script}.items() if v]  # fmt: skip
        if given:
            _fail(given[0], "only with --from-logs or --from-mlflow")
    if assembling and not github_id and not GITHUB_LOGIN.match(author):
        _fail("--github-id", f"required: the author {author!r} is not a GitHub login (letters, digits, single hyphens)")
    date = _parse_date(date_text)

    from tools.submit.accept import submit_draft, submit_record
    from tools.submit.assemble import assemble_draft

    options = {"track": not no_track, "tracking_uri": tracking_uri}
    try:
        if not assembling:
            outcome = submit_record(inputs[0], dry_run, **options)
        else:
            details = {"github_id": github_id, "blurb": blurb, "date": date, "script": script}
            with tempfile.TemporaryDirectory(prefix="submit-mlflow-") as downloads:
                logs = list(inputs)
                if from_mlflow:
                    from tools.submit.tracking import fetch_logs

                    logs = fetch_logs(list(inputs), Path(downloads), tracking_uri)
                draft = assemble_draft(logs, track_id, name, author, **details)
            outcome = submit_draft(draft, dry_run, **options)
    except RecordError as problem:
        _fail(problem.where, problem.message)
    except OSError as problem:
        _fail(getattr(problem, "filename", None) or "submit record", problem.strerror or str(problem))
    _print_outcome(outcome, as_json)
    sys.exit(outcome.exit_code)

"""`verify pr`: the pull-request gate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from tools.records.model import RecordError
from tools.verify.commands.options import require_sandbox
from tools.verify.sandbox import UNISOLATED_FLAG_HELP, unisolated_mode


@click.command("pr")
@click.option("--base", "base_ref", required=True, help="The commit (or branch) the pull request merges into.")
@click.option("--head", "head_ref", default="HEAD", show_default=True, help="The pull request's commit.")
@click.option("--repo", "repo_path", type=click.Path(path_type=Path), default=".", show_default=True,
              help="A git repository holding both commits: the pull request, read as data (nothing in it runs).")
@click.option("--summary", "summary_path", type=click.Path(path_type=Path), default=None,
              help="Append the Markdown summary here (default: $GITHUB_STEP_SUMMARY when set).")
@click.option("--no-reproduce", is_flag=True, help="Skip re-running seeds (reported as skipped, never as passed).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON (shaped like `verify record --json`).")
@click.option("--unisolated", is_flag=True, help=UNISOLATED_FLAG_HELP)
def command(base_ref: str, head_ref: str, repo_path: Path, summary_path: Path | None, no_reproduce: bool,
            as_json: bool, unisolated: bool) -> None:
    """Gate a pull request: it must add exactly one new record folder and that record must pass the judge.

    \b
    The pull request is data: its diff (`git diff -z`) and the record's files are read from git objects, and
    the record is judged in a scratch tree of the base commit, by the base's records/tracks.toml and accepted
    records, with the judge that runs this command (CI installs it from the base commit). Nothing from the pull
    request's tools/, tracks.toml, Makefile or workflows runs; the record's own code runs only in the sandbox.

    \b
    Fails when the pull request edits, renames or deletes anything under an existing record, adds two records,
    adds symlinks, verification.json or files over the size cap, ships logs that copy an existing record's, or
    mixes a record with core changes. A pull request that adds no record (docs, code for a maintainer) is "no
    record to judge", not a failure. Flags for maintainer audit a record that ships a tokenizer, dataset code,
    or byte-accounting code that differs from the baseline's, and shows that diff. Then runs on the added
    record: verify record; verify tokenizer when flagged; verify probes; verify reproduce when its track runs
    on the CI machine.

    \b
    Examples:
      verify pr --base origin/main                     # the checked-out branch against main
      verify pr --repo ../pr --base "$BASE_SHA" --head "$HEAD_SHA" --summary "$GITHUB_STEP_SUMMARY"

    \b
    Output: Markdown (also appended to --summary); with --json: {"ok", "record", "checks": [{"id", "status",
    "message", "stage"}], "stats", "verdict", "problems": [{"id", "message"}], "stages", "flags", ...}.

    \b
    Exit codes: 0 passed or no record to judge, 1 failed, 2 bad usage (not a git repository, unknown
    reference, unreadable base rules) or no sandbox (bubblewrap) without --unisolated.
    """
    from tools.verify.pr.gate import gate_pull_request
    from tools.verify.pr.stages import REPRODUCE

    require_sandbox(unisolated)
    try:
        with unisolated_mode(unisolated):
            report = gate_pull_request(repo_path.resolve(), base_ref, head_ref,
                                       skip={REPRODUCE} if no_reproduce else ())
    except RecordError as error:
        click.echo(f"error: {error.where}: {error.message}", err=True)
        sys.exit(2)
    if no_reproduce:
        report.notes.append("verify reproduce was skipped by request (--no-reproduce).")
    if unisolated:
        report.notes.append("UNISOLATED: the record's code ran without the sandbox; this verdict is not evidence.")
    markdown = report.markdown()
    summary_path = summary_path or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get(
        "GITHUB_STEP_SUMMARY") else None)
    if summary_path is not None:
        with open(summary_path, "a", encoding="utf-8") as summary:
            summary.write(markdown)
    click.echo(json.dumps(report.to_json(), indent=2, allow_nan=False) if as_json else markdown)
    sys.exit(0 if report.ok else 1)

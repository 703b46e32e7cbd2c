"""`verify pr`: the pull-request gate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from tools.records.model import RecordError


@click.command("pr")
@click.option("--base", "base_ref", required=True, help="The branch or commit the pull request merges into.")
@click.option("--head", "head_ref", default="HEAD", show_default=True, help="The pull request's commit (checked out).")
@click.option("--repo", "repo_path", type=click.Path(path_type=Path), default=".", show_default=True,
              help="The repository.")
@click.option("--summary", "summary_path", type=click.Path(path_type=Path), default=None,
              help="Append the Markdown summary here (default: $GITHUB_STEP_SUMMARY when set).")
@click.option("--no-reproduce", is_flag=True, help="Skip re-running seeds (reported as skipped, never as passed).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def command(base_ref: str, head_ref: str, repo_path: Path, summary_path: Path | None, no_reproduce: bool,
            as_json: bool) -> None:
    """Gate a pull request: it must add exactly one new record folder and that record must pass the judge.

    \b
    Fails when the pull request edits or deletes an existing record, adds two records, adds symlinks or files
    over the size cap, or changes core files (reported as a core change for a maintainer, not judged as a
    record). Flags for maintainer audit a record that ships a tokenizer, dataset code, or byte-accounting code
    that differs from the baseline's, and shows that diff. Then runs on the added record: verify record;
    verify tokenizer when flagged; verify probes when it ships an artifact; verify reproduce when its track
    runs on the CI machine.

    \b
    Example (in CI, with the pull request checked out):
      verify pr --base origin/main --summary "$GITHUB_STEP_SUMMARY"

    \b
    Exit codes: 0 passed, 1 failed, 2 bad usage (not a git repository, unknown reference).
    """
    from tools.verify.pr_gate import gate_pull_request
    from tools.verify.pr_stages import stage_applies

    def wanted(name, folder, flags):
        if no_reproduce and name == "verify reproduce":
            return False
        return stage_applies(name, folder, flags)

    try:
        report = gate_pull_request(repo_path.resolve(), base_ref, head_ref, wanted=wanted)
    except RecordError as error:
        click.echo(f"error: {error.where}: {error.message}", err=True)
        sys.exit(2)
    if no_reproduce:
        report.notes.append("verify reproduce was skipped by request (--no-reproduce).")
    markdown = report.markdown()
    summary_path = summary_path or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get(
        "GITHUB_STEP_SUMMARY") else None)
    if summary_path is not None:
        with open(summary_path, "a", encoding="utf-8") as summary:
            summary.write(markdown)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else markdown)
    sys.exit(0 if report.ok else 1)

"""`submit leaderboard [--check]`: regenerate leaderboard.md (and progress plots) from the record folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command(name="leaderboard")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if leaderboard.md differs from what would be generated.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where leaderboard.md goes (default: <repo>/leaderboard.md).")
@click.option("--no-plots", is_flag=True, help="Do not write records/<track>/progress.png.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: {path, changed, plots_written, check}.")
def command(check: bool, output: Path | None, no_plots: bool, as_json: bool) -> None:
    """Regenerate leaderboard.md from records/ alone, deterministically.

    \b
    Every record folder is re-judged (the checks of `verify record`); per track, in tracks.toml order:
      - the SOTA chain, oldest first: mean ± std val_bpb, seeds, p-value against the previous SOTA,
        artifact bytes (max over seeds of code + model), author, date, how far it was verified, a link;
      - non-record entries (every check passed but the t-test against SOTA; unranked tracks);
      - records not accepted, with the first failing check.
    A record enters the chain only if its checks pass and its t-test against the SOTA at its date passes,
    whatever its submission.json claims. Same record folders -> same bytes (no timestamps, sorted).
    The file is replaced atomically, and only when its bytes change; so are records/<track>/progress.png
    (the SOTA's val_bpb over time, linked from the board).

    \b
    Inputs: records/tracks.toml, records/<track>/<record>/, the local dataset manifests when prepared
    (PG_REPO_ROOT / PG_DATASETS_ROOT point elsewhere).

    \b
    Examples:
      submit leaderboard                 # regenerate (what CI does after a merge)
      submit leaderboard --check         # CI: is the committed leaderboard.md current?

    \b
    Exit codes: 0 written or up to date, 1 --check found it out of date, 2 unreadable input (tracks.toml).
    """
    from tools.records.model import RecordError
    from tools.submit.accept import unified_diff
    from tools.submit.leaderboard import update_leaderboard

    try:
        update = update_leaderboard(output, plots=not no_plots, dry_run=check)
    except RecordError as problem:
        click.echo(f"error: {problem.where}: {problem.message}", err=True)
        sys.exit(2)
    from tools.submit.leaderboard import default_leaderboard_path

    path = output or default_leaderboard_path()
    if as_json:
        click.echo(json.dumps({"path": str(path), "changed": update.changed, "check": check,
                               "plots_written": [str(p) for p in update.plots_written]}, indent=2))  # fmt: skip
    elif check:
        if update.changed:
            click.echo(f"{path} is out of date; run `submit leaderboard`:")
            click.echo(unified_diff(update.previous, update.text).rstrip("\n"))
        else:
            click.echo(f"{path} is up to date")
    else:
        click.echo(f"{path} {'updated' if update.changed else 'unchanged'}")
        for plot in update.plots_written:
            click.echo(f"{plot} updated")
    sys.exit(1 if check and update.changed else 0)

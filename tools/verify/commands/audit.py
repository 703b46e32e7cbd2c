"""`verify audit DIR`: judge every record of a records tree under one ruleset, with a table and a summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tools.verify.commands.options import ruleset_option


def _row_problems(entry) -> str:
    if entry.error is not None:
        return f"error: {entry.error}"
    failed = [c.id for c in entry.checks if c.status == "fail"]
    warned = [c.id for c in entry.checks if c.status == "warn"]
    parts = []
    if failed:
        parts.append("fail: " + ", ".join(failed))
    if warned:
        parts.append("warn: " + ", ".join(warned))
    return "; ".join(parts) or "-"


def render_audit(ruleset: str, root: Path, entries, summary, verbose: bool) -> str:
    from tools.verify.report_format import render_checks

    width = max([len("record"), *(len(e.record) for e in entries)])
    lines = [f"ruleset: {ruleset}", f"records: {root}", "",
             f"{'record':<{width}}  verdict  problems", f"{'-' * width}  -------  --------"]
    for entry in entries:
        verdict = "PASS" if entry.ok else ("ERROR" if entry.error else "FAIL")
        lines.append(f"{entry.record:<{width}}  {verdict:<7}  {_row_problems(entry)}")
        if verbose and not entry.ok and entry.checks:
            shown = [c for c in entry.checks if c.status in ("fail", "warn")]
            lines += ["    " + line for line in render_checks(shown).splitlines()]
    lines += ["", "per check:", f"  {'check':<20}  {'pass':>5}  {'fail':>5}  {'warn':>5}  {'skip':>5}"]
    for check_id, counts in summary["checks"].items():
        lines.append(f"  {check_id:<20}  {counts['pass']:>5}  {counts['fail']:>5}  {counts['warn']:>5}  {counts['skip']:>5}")
    lines += ["", f"{summary['passed']} of {summary['records']} records passed, {summary['failed']} failed, "
                  f"{summary['errors']} could not be judged ({summary['seconds_total']:.1f} s, median "
                  f"{summary['seconds_median'] or 0:.3f} s per record)"]
    return "\n".join(lines)


@click.command("audit")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@ruleset_option
@click.option("--check", "check_ids", multiple=True, metavar="ID",
              help="Only these checks decide a record's verdict and are shown (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Under each record that did not pass, its failing and warning checks.")
def command(directory: Path, ruleset: str | None, check_ids: tuple[str, ...], as_json: bool, verbose: bool) -> None:
    """Judge every record folder under DIRECTORY (a records tree: <track>/<record>/, or a repository holding one in
    records/) with `verify record`'s checks, without running any record's code.

    \b
    One broken record never stops the others: it is reported with the one line saying why. A progress bar runs on
    stderr; stdout gets a table (one row per record: verdict, failing and warning checks), then per check id how
    many records passed, failed, warned or skipped it.

    \b
    --ruleset parameter-golf judges by the public competition's rules (records/parameter-golf.toml: its track
    names, datasets, byte counting and wallclock grace); the default is the tree's own tracks.toml, else ours.

    \b
    --json: {"ruleset", "records": [{"record", "ok", "checks": [{"id", "status", "message"}]}], "summary"}.

    \b
    Examples:
      verify audit records
      verify audit ../parameter-golf/records --ruleset parameter-golf
      verify audit ../parameter-golf --ruleset parameter-golf --check artifact_bytes --check train_time --json

    \b
    Exit codes: 0 every record passed, 1 some record failed or could not be judged, 2 bad usage.
    """
    from tools.records.model import RecordError
    from tools.records.rulesets import load_ruleset
    from tools.verify.audit import audit_json, audit_tree, record_folders, records_tree, summarize
    from tools.verify.checks import CHECK_IDS

    unknown = [check_id for check_id in check_ids if check_id not in CHECK_IDS]
    if unknown:
        click.echo(f"error: --check {unknown[0]}: unknown check id (known: {', '.join(CHECK_IDS)})", err=True)
        sys.exit(2)
    if not directory.is_dir():
        click.echo(f"error: {directory}: no such folder", err=True)
        sys.exit(2)
    root = records_tree(directory).resolve()
    try:
        if ruleset is None and (root / "tracks.toml").is_file():
            ruleset = str(root / "tracks.toml")
        tracks = load_ruleset(ruleset)
    except RecordError as error:
        click.echo(f"error: {error.where}: {error.message}", err=True)
        sys.exit(2)
    name = next(iter(tracks.values())).ruleset if tracks else "tracks"
    folders = record_folders(root)
    if not folders:
        click.echo(f"error: {root}: no record folders (<track>/<record>/) here", err=True)
        sys.exit(2)

    from tqdm import tqdm

    with tqdm(total=len(folders), desc="judging", unit="record", file=sys.stderr, leave=False,
              disable=None) as bar:
        entries = audit_tree(root, tracks, check_ids=check_ids or None,
                             on_record=lambda entry: (bar.set_postfix_str(entry.record[-40:]), bar.update()))
    if as_json:
        from tools.verify.report_format import json_safe

        click.echo(json.dumps(json_safe(audit_json(name, entries)), indent=2, allow_nan=False))
    else:
        click.echo(render_audit(name, root, entries, summarize(entries), verbose))
    sys.exit(0 if all(entry.ok for entry in entries) else 1)

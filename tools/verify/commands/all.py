"""`verify all`: every stage of the judge on one record, as the pull-request gate runs them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tools.records.model import CheckResult, RecordError
from tools.verify.commands.options import require_sandbox
from tools.verify.sandbox import UNISOLATED_FLAG_HELP, unisolated_mode

# Check ids written to verification.json: the ones that run the record's code (the leaderboard recomputes the rest).
EVIDENCE_STAGES = ("verify tokenizer", "verify probes", "verify reproduce")


@click.command("all")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--reproduce/--no-reproduce", default=True, show_default=True,
              help="Re-run the seeds when the track runs on this machine (the CPU track: minutes per seed).")
@click.option("--write-evidence", is_flag=True,
              help="Record the tokenizer, probe and reproduction results in PATH/verification.json for the "
                   "leaderboard's 'verified' column (maintainers and the merge workflow; never in a pull request).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--unisolated", is_flag=True, help=UNISOLATED_FLAG_HELP + " Not with --write-evidence.")
def command(path: Path, reproduce: bool, write_evidence: bool, as_json: bool, unisolated: bool) -> None:
    """Run every judge on one record: verify record, tokenizer (always), probes, reproduce (when the track runs here).

    \b
    Example:
      verify all records/track_cpu_shakespeare/2026-11-22_cpu_baseline --write-evidence

    \b
    Exit codes: 0 no check failed, 1 a check failed, 2 bad usage, unreadable record, or no sandbox (bubblewrap)
    without --unisolated.
    """
    from tools.verify.pr_stages import REPRODUCE, real_stages, stage_applies
    from tools.verify.report_format import json_safe, render_checks

    if unisolated and write_evidence:  # evidence is only what the judge saw under the sandbox
        click.echo("error: --unisolated: an unisolated verdict is never evidence; drop --write-evidence", err=True)
        sys.exit(2)
    require_sandbox(unisolated)
    stages: dict[str, list[CheckResult]] = {}
    try:
        with unisolated_mode(unisolated):
            for name, stage in real_stages().items():
                if name == REPRODUCE and not (reproduce and stage_applies(name, path, [])):
                    continue
                click.echo(f"==> {name} {path}", err=True)
                stages[name] = stage(path)
    except RecordError as error:
        click.echo(f"error: {error.where}: {error.message}", err=True)
        sys.exit(2)
    checks = [check for results in stages.values() for check in results]
    ok = not any(check.status == "fail" for check in checks)
    if write_evidence:
        from tools.verify.evidence import write_verification_evidence

        evidence = [c for name in EVIDENCE_STAGES for c in stages.get(name, [])]
        written = write_verification_evidence(path, evidence)
        click.echo(f"evidence: {written}", err=True)
    if as_json:
        payload = {"ok": ok, "record": str(path), "isolation": "unisolated" if unisolated else "bubblewrap",
                   "stages": {name: [{"id": c.id, "status": c.status, "message": c.message} for c in results]
                              for name, results in stages.items()}}
        click.echo(json.dumps(json_safe(payload), indent=2))
    else:
        for name, results in stages.items():
            click.echo(f"\n{name}\n{render_checks(results)}")
        click.echo(f"\n{'PASSED' if ok else 'FAILED'}: {path}" + (" (UNISOLATED: not evidence)" if unisolated else ""))
    sys.exit(0 if ok else 1)

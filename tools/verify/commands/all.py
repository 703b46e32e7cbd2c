"""`verify all`: every stage of the judge on one record, as the pull-request gate runs them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tools.records.model import CheckResult, RecordError
from tools.verify.commands.options import require_sandbox
from tools.verify.evidence import EVIDENCE_FILE, current_isolation, write_atomic
from tools.verify.sandbox import UNISOLATED_FLAG_HELP, unisolated_mode

# Check ids written to verification.json: the ones that run the record's code (the leaderboard recomputes the rest).
EVIDENCE_STAGES = ("verify tokenizer", "verify probes", "verify reproduce")


@click.command("all")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--reproduce/--no-reproduce", default=True, show_default=True,
              help="Re-run the seeds when the track runs on this machine (the CPU track: minutes per seed).")
@click.option("--write-evidence", is_flag=True,
              help="Record the tokenizer, probe and reproduction results in PATH/verification.json for the "
                   "leaderboard's 'verified' column, bound to the record's file hashes, this judge's commit and the "
                   "isolation each check ran under (maintainers and the merge workflow; never in a pull request).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--unisolated", is_flag=True, help=UNISOLATED_FLAG_HELP + " Not with --write-evidence.")
def command(path: Path, reproduce: bool, write_evidence: bool, as_json: bool, unisolated: bool) -> None:
    """Run every judge on one record: verify record, tokenizer (always), probes, reproduce (when the track runs here).

    \b
    Example:
      verify all records/track_cpu_shakespeare/2026-11-22_cpu_baseline --write-evidence

    \b
    Exit codes: 0 no check failed, 1 a check failed, 2 bad usage, unreadable record, no sandbox (bubblewrap)
    without --unisolated, or the record's code changed PATH/verification.json (possible only unisolated; undone).
    """
    from tools.verify.pr.stages import REPRODUCE, real_stages, stage_applies
    from tools.verify.report_format import json_safe, render_checks

    if unisolated and write_evidence:  # evidence is only what the judge saw under the sandbox
        click.echo("error: --unisolated: an unisolated verdict is never evidence; drop --write-evidence", err=True)
        sys.exit(2)
    require_sandbox(unisolated)
    stages: dict[str, list[CheckResult]] = {}
    before = _evidence_bytes(path)
    try:
        with unisolated_mode(unisolated):
            isolation = current_isolation()  # what run_sandboxed applies to every stage below
            for name, stage in real_stages().items():
                if name == REPRODUCE and not (reproduce and stage_applies(name, path, [])):
                    continue
                click.echo(f"==> {name} {path}", err=True)
                stages[name] = stage(path)
    except RecordError as error:
        click.echo(f"error: {error.where}: {error.message}", err=True)
        sys.exit(2)
    if _evidence_bytes(path) != before:
        # Only possible without the sandbox: record code reached the record folder itself. Undo it, loudly.
        _restore_evidence(path, before)
        click.echo(f"error: the record's code changed {path / EVIDENCE_FILE} while it ran; restored", err=True)
        sys.exit(2)
    checks = [check for results in stages.values() for check in results]
    ok = not any(check.status == "fail" for check in checks)
    if write_evidence:
        from tools.verify.evidence import evidence_provenance, read_verification_evidence, write_verification_evidence

        evidence = [c for name in EVIDENCE_STAGES for c in stages.get(name, [])]
        written = write_verification_evidence(path, evidence, isolation=isolation)
        click.echo(f"evidence: {written} ({evidence_provenance(read_verification_evidence(path) or {})})", err=True)
    if as_json:
        payload = {"ok": ok, "record": str(path), "isolation": isolation,
                   "stages": {name: [{"id": c.id, "status": c.status, "message": c.message} for c in results]
                              for name, results in stages.items()}}
        click.echo(json.dumps(json_safe(payload), indent=2))
    else:
        for name, results in stages.items():
            click.echo(f"\n{name}\n{render_checks(results)}")
        click.echo(f"\n{'PASSED' if ok else 'FAILED'}: {path}" + (" (UNISOLATED: not evidence)" if unisolated else ""))
    sys.exit(0 if ok else 1)


def _evidence_bytes(folder: Path) -> bytes | None:
    """The record's verification.json as it is now: its bytes, or None when absent or not a regular file
    (read without following a symlink and without blocking on a FIFO: the folder is the participant's)."""
    from tools.records.paths import read_regular_file
    from tools.verify.evidence import MAX_EVIDENCE_BYTES

    try:
        return read_regular_file(folder / EVIDENCE_FILE, MAX_EVIDENCE_BYTES + 1, follow_symlinks=False)[0]
    except (OSError, ValueError):
        return None


def _restore_evidence(folder: Path, before: bytes | None) -> None:
    target = folder / EVIDENCE_FILE
    if before is None:
        target.unlink(missing_ok=True)
    else:
        write_atomic(target, before)

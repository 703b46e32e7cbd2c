"""`verify reproduce`: re-run a record's seeds and compare them with its claims."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from tools.records.model import RecordError
from tools.verify.commands.options import require_sandbox
from tools.verify.sandbox import UNISOLATED_FLAG_HELP, unisolated_mode


def parse_seed_list(text: str) -> list[int]:
    """'42,1337, 2025' -> [42, 1337, 2025]; ValueError naming the bad item."""
    seeds = []
    for item in text.split(","):
        item = item.strip()
        if not item.lstrip("-").isdigit():
            raise ValueError(f"--seeds: {item!r} is not an integer (expected e.g. 42,1337,2025)")
        seeds.append(int(item))
    return seeds


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(result) -> str:
    """The human-readable verdict: one row per seed, then tolerance, Welch's test, sandbox, MLflow, and the check
    in the table every `verify` command prints."""
    header = ("seed", "status", "claimed", "reproduced", "delta", "train_s", "eval_s", "bytes", "wall_s")
    rows = [header]
    for run in result.runs:
        rows.append((
            str(run.seed), run.status.upper(), _number(run.claimed_bpb, 6), _number(run.reproduced_bpb, 6),
            "-" if run.delta_bpb is None else f"{run.delta_bpb:+.6f}",
            _number(None if run.train_time_ms is None else run.train_time_ms / 1000, 1),
            _number(None if run.eval_time_ms is None else run.eval_time_ms / 1000, 1),
            "-" if run.bytes_total is None else f"{run.bytes_total:,}",
            "killed" if run.timed_out else f"{run.wall_s:.1f}",
        ))
    from tools.text_table import format_table
    from tools.verify.report_format import render_checks

    verdict = "PASSED" if result.ok else f"FAILED ({result.check.id})"
    lines = [f"record: {result.record}", f"verdict: {verdict}", "",
             f"track {result.track_id}, {len(result.seeds)} seed(s), nproc {result.nproc}, limit "
             f"{result.time_limit_s:g} s per seed, claims from {result.claims_from}"]
    lines += format_table(rows)
    for run in result.runs:
        for problem in run.problems:
            lines.append(f"  {problem}")
    lines.append(f"tolerance: {result.tolerance_bpb:.6f} bpb ({result.tolerance_source})")
    welch = result.welch
    if welch.get("t") is not None:
        lines.append(f"welch t-test (claimed n={welch['n_claimed']} vs reproduced n={welch['n_reproduced']}): "
                     f"t={welch['t']:.3f} p={welch['p']:.4f}; {welch.get('note', '')}".rstrip("; "))
    else:
        lines.append(f"welch t-test: {welch.get('note', 'not computed')}")
    lines.append(f"sandbox: {result.network_note}")
    by_reason: dict[str, list[str]] = {}
    for entry in result.skipped_files:  # "name: reason"
        name, _, reason = entry.partition(": ")
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        lines.append(f"not copied into the sandbox ({reason}): {', '.join(names)}")
    tracking = result.tracking
    if not tracking.get("enabled"):
        lines.append("mlflow: off (--no-track)")
    elif tracking.get("warning"):
        lines.append(f"mlflow: warning: {tracking['warning']}")
    elif tracking.get("run_ids"):
        lines.append(f"mlflow: {len(tracking['run_ids'])} run(s) tagged reproduction_of={result.record}")
    else:
        lines.append(f"mlflow: {tracking.get('note', 'nothing logged')}")
    kept = [run.kept_log for run in result.runs if run.kept_log]
    if kept:
        lines.append("reproduced logs kept: " + ", ".join(kept))
    lines += ["", render_checks([result.check])]
    return "\n".join(lines)


@contextlib.contextmanager
def _terminate_like_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP (CI cancelling the job) take the Ctrl-C path: the sandbox kills the child's process group
    and the private copy is removed on the way out."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ingester():
    """The product's MLflow ingestion, handed to the judge (a command line may import tools.submit; the judge's
    library may not)."""
    from tools.submit.reproductions import ingest_reproduced_logs

    return ingest_reproduced_logs


@click.command("reproduce")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--seeds", "seeds_text", metavar="LIST", help="Comma-separated seeds to run, e.g. 42,1337,2025.")
@click.option("--n", "count", type=int, metavar="K", help="Run the first K claimed seeds (default: all of them).")
@click.option("--nproc", type=int, metavar="N",
              help="Processes per run; N > 1 launches `torchrun --standalone --nproc_per_node N`. Default: the "
                   "track's count on a CI-runnable track; required on GPU tracks.")
@click.option("--margin", "margin_s", type=float, default=120.0, show_default=True, metavar="S",
              help="Seconds added to the track's train + eval caps for start-up and serialization.")
@click.option("--time-limit", "time_limit_s", type=float, metavar="S",
              help="Per-seed wall-clock limit, replacing caps + margin (needed on a track without caps).")
@click.option("--logs-dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Also keep each reproduced log here as reproduced_seed<SEED>.log.")
@click.option("--no-track", is_flag=True, help="Do not log the reproduced runs to MLflow.")
@click.option("--tracking-uri", metavar="URI", help="MLflow store (default: $MLFLOW_TRACKING_URI, else <repo>/mlflow.db).")
@click.option("--quiet", "-q", is_flag=True, help="No live progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON (same shape as `verify record --json`).")
@click.option("--unisolated", is_flag=True, help=UNISOLATED_FLAG_HELP)
def command(path: Path, seeds_text: str | None, count: int | None, nproc: int | None, margin_s: float,
            time_limit_s: float | None, logs_dir: Path | None, no_track: bool, tracking_uri: str | None, quiet: bool,
            as_json: bool, unisolated: bool) -> None:
    """Re-run a record's own train_gpt.py seed by seed and check the runs against its claims.

    \b
    Each seed runs from a private temporary copy of PATH (never in place; shipped logs and artifacts left
    out) with the track's dataset and environment: SEED, DATA_PATH=<datasets>/<track dataset>, RUN_ID,
    ARTIFACT_DIR, and the track's [env] table (MAX_WALLCLOCK_SECONDS, TORCH_NUM_THREADS, ...). Each run has a
    hard time limit (train cap + eval cap + --margin) and runs under bubblewrap: uid 65534, no capabilities,
    its own namespaces and /proc, no network (loopback only), the copy and the dataset read-only, writing only
    logs/ and its TMPDIR, with limits on memory, processes, disk and output. No bubblewrap: exit 2 (one line)
    unless --unisolated, which the output reports and which is never evidence.

    \b
    The log each run writes is parsed like `verify record` parses logs, and the check `reproduction` fails
    when a seed crashed, was killed at the limit, broke a cap (train time, eval time, artifact file + code
    bytes), embedded other code than the record's train_gpt.py, or scored further from its claim than the
    tolerance: the track's reproduce_tolerance_bpb, or the claimed seeds' sample std if larger. Claims come
    from submission.json's seed_results, else from the shipped logs. Welch's t-test of claimed vs
    reproduced scores is reported. Reproduced runs are logged to MLflow tagged reproduction_of=<record>.

    \b
    Examples:
      verify reproduce records/track_cpu_shakespeare/2026-01-15_baseline
      verify reproduce records/track_cpu_shakespeare/2026-01-15_baseline --n 1 --no-track
      verify reproduce records/track_10min_16mb/2026-03-01_x --nproc 8 --seeds 42 --json

    \b
    Output: a table on stdout (or --json); live progress per seed on stderr (bars on a terminal, plain lines
    otherwise). Exit codes: 0 reproduced, 1 the check failed, 2 bad usage or unreadable input (e.g. the
    track's dataset is not prepared: the message names the command that prepares it), 130 interrupted.
    """
    from tools.verify.report_format import render_json
    from tools.verify.reproduce import reproduce_record
    from tools.verify.reproduce.progress import progress_factory

    try:
        seeds = parse_seed_list(seeds_text) if seeds_text is not None else None
        if seeds is not None and count is not None:
            raise ValueError("--seeds and --n exclude each other")
    except ValueError as problem:
        click.echo(f"error: {path}: {problem}", err=True)
        sys.exit(2)
    require_sandbox(unisolated)
    try:
        with _terminate_like_interrupt(), unisolated_mode(unisolated):
            result = reproduce_record(
                path, seeds=seeds, n=count, nproc=nproc, margin_s=margin_s, time_limit_s=time_limit_s,
                progress=None if quiet else progress_factory(sys.stderr), track_in_mlflow=not no_track,
                tracking_uri=tracking_uri, logs_dir=logs_dir, ingest=None if no_track else _ingester())
    except RecordError as error:
        click.echo(f"error: {error.where}: {error.message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(f"error: {path}: interrupted; the runs were stopped and their temporary copies removed", err=True)
        sys.exit(130)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(render_json(result.report()) if as_json else format_table(result))
    sys.exit(0 if result.ok else 1)

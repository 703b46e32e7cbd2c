"""`verify probes`: ask a record's own scorer for full distributions and check them (normalization, causality,
rescore)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from tools.records.model import RecordError
from tools.verify.commands.options import require_sandbox
from tools.verify.probes import DEFAULT_POSITIONS, DEFAULT_TIMEOUT_S
from tools.verify.sandbox import UNISOLATED_FLAG_HELP, unisolated_mode


def parse_seeds(values: tuple[str, ...]) -> list[int] | None:
    """('42,1337', '2025') -> [42, 1337, 2025]; None when no --seeds was given. ValueError naming a bad item."""
    if not values:
        return None
    seeds = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item.isdigit():
                raise ValueError(f"--seeds: {item!r} is not a seed (expected e.g. 42,1337,2025)")
            seeds.append(int(item))
    return seeds


@contextlib.contextmanager
def _terminate_like_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP (a cancelled CI job) take the Ctrl-C path, so the scorer's process group is killed and the
    temporary folders are removed on the way out."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_json(check) -> dict:
    return {"id": check.id, "status": check.status, "message": check.message, "evidence": check.evidence}


@click.command("probes")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--seeds", "seeds_text", multiple=True, metavar="LIST",
              help="Seeds to probe, e.g. 42,1337 (repeatable). Default: every seed that ships an artifact.")
@click.option("--positions", type=click.IntRange(min=1), default=DEFAULT_POSITIONS, show_default=True, metavar="N",
              help="The fewest probe rows per artifact (every call also carries its share: 1 row in 8).")
@click.option("--no-rescore", is_flag=True,
              help="Score a random sample of windows instead of the whole validation set (no rescore verdict).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=DEFAULT_TIMEOUT_S, show_default=True,
              metavar="S", help="Wall-clock limit of each call to the record's scorer.")
@click.option("--rng-seed", type=int, metavar="K", help="Fix the probe's random choices (default: fresh, reported).")
@click.option("--datasets-root", type=click.Path(path_type=Path), metavar="DIR",
              help="Prepared datasets (default: $PG_DATASETS_ROOT, else <repo>/data/datasets).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON, with each probe's evidence.")
@click.option("--unisolated", is_flag=True, help=UNISOLATED_FLAG_HELP)
def command(path: Path, seeds_text: tuple[str, ...], positions: int, no_rescore: bool, timeout_s: float,
            rng_seed: int | None, datasets_root: Path | None, quiet: bool, as_json: bool, unisolated: bool) -> None:
    """Check that a record's model is a real, causal distribution that earns its claimed score.

    \b
    The record's own scoring entry point (docs/CONTRACTS.md §4)
        python train_gpt.py score --artifact final_model_seed<SEED>.* --tokens IN.npy --out OUT.npy
    runs under bubblewrap (tools/verify/sandbox/__init__.py: uid 65534, no capabilities, its own namespaces and
    /proc, only a private read-only copy of PATH and the tokens visible, no network, CPU only, limits on
    time, memory, processes, disk and output; no bubblewrap: exit 2 unless --unisolated). It returns full
    log-probabilities [B, T, V]; the judge checks their shape, dtype and values and does all the arithmetic.
    The three verdicts come from the same calls: every call has one shape, scores evaluation windows and
    carries probe rows (copies of windows that other calls score), so a scorer cannot tell a probe from
    scoring:

    \b
      normalization  logsumexp over the vocabulary is 0 within 1e-3 at every position of every call
                     (catches mixtures that renormalize only the gold token)
      causality      a copy whose tokens after position t were replaced matches its original at positions
                     <= t (1e-5 relative + 1e-5), t drawn by the judge among scored positions, both sides of
                     a document boundary included; an exact copy among other rows matches everywhere (a
                     row must not depend on its batch)
      rescore        val_bpb from those calls over the full validation set (windows of the log's
                     EVAL_SEQ_LEN, else TRAIN_SEQ_LEN, every EVAL_STRIDE; / the manifest's val_bytes)
                     matches the seed's claims in its log and submission.json within 1e-4

    \b
    Every seed that ships final_model_seed<SEED>.* is probed (or those given with --seeds). A record
    without a `score` command or without an artifact gets `skip` on all three, with the reason: a human
    must review it. Inputs: PATH = records/<track>/<record>; the track's dataset under --datasets-root.

    \b
    Examples:
      verify probes records/track_cpu_shakespeare/2026-01-15_baseline
      verify probes records/track_cpu_shakespeare/2026-01-15_baseline --seeds 42 --no-rescore
      verify probes records/track_cpu_shakespeare/2026-01-15_baseline --json > probes.json

    \b
    Output: a table of the three checks on stdout (or --json: {"ok", "record", "checks": [{"id", "status",
    "message", "evidence"}]}); progress on stderr. Exit codes: 0 no probe failed, 1 a probe failed,
    2 bad usage or unreadable input (one line: error: <where>: <what>), 130 interrupted.
    """
    from tools.records.model import Report
    from tools.verify.checks.verdict import record_label, resolve_roots
    from tools.verify.probes import probe_record
    from tools.verify.report_format import json_safe, render_table

    try:
        seeds = parse_seeds(seeds_text)
    except ValueError as problem:
        click.echo(f"error: {path}: {problem}", err=True)
        sys.exit(2)
    require_sandbox(unisolated)

    def progress(line: str) -> None:
        click.echo(f"probes: {line}", err=True)

    try:
        with _terminate_like_interrupt(), unisolated_mode(unisolated):
            checks = probe_record(path, seeds=seeds, positions=positions, rescore=not no_rescore,
                                  datasets_root=datasets_root, timeout_s=timeout_s, rng_seed=rng_seed,
                                  progress=None if quiet else progress)
    except RecordError as error:
        click.echo(f"error: {error.where}: {error.message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(f"error: {path}: interrupted; the scorer was stopped and its temporary files removed", err=True)
        sys.exit(130)
    report = Report(record=record_label(Path(path).resolve(), resolve_roots(None, None)[0]), checks=checks)
    if checks and all(check.status == "skip" for check in checks):
        # Nothing was probed (no dataset, no artifact, no scoring entry point): never a PASSED with exit 0.
        click.echo(f"error: {path}: nothing checked: {checks[0].message}", err=True)
        if as_json:
            document = json_safe({**report.to_json(), "ok": False, "verdict": "nothing checked",
                                  "checks": [_check_json(c) for c in checks]})
            click.echo(json.dumps(document, indent=2, allow_nan=False))
        sys.exit(2)
    if as_json:
        document = json_safe({**report.to_json(), "checks": [_check_json(c) for c in checks]})
        click.echo(json.dumps(document, indent=2, allow_nan=False))
    else:
        click.echo(render_table(report))
    sys.exit(0 if report.ok else 1)

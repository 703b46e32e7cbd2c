"""What does the bubblewrap sandbox cost per child, and per `verify probes` run?

Two measurements, each sandboxed vs unisolated (run_sandboxed(..., unisolated=True): same limits and output
handling, no bubblewrap), in ABBA order so drift (a warming page cache, a busy neighbour) hits both arms alike:

  start    `python -c pass` as a child, --runs times per arm: the fixed cost of one sandboxed child
  probes   `probe_record` (normalization + causality + rescore) on the test fixtures' tiny honest scorer record
           (tests/test_probes_kit.py, a numpy scorer), --probe-runs times per arm
  baseline `probe_record` on the repository's own train_gpt.py (a tiny model trained first, as
           tests/test_probes_baseline.py does): every scorer call imports torch, --baseline-runs times per arm

Prints a table of medians and the sandboxed/unisolated ratio. Needs bubblewrap (`make sandbox`).

Usage: python bench/bench_sandbox.py [--runs 20] [--probe-runs 4] [--baseline-runs 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.verify.sandbox import run_sandboxed, sandbox_available  # noqa: E402


def abba(runs: int, arms: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run the two arms A B B A A B B A ...: `runs` timings each."""
    (a, run_a), (b, run_b) = arms.items()
    times: dict[str, list[float]] = {a: [], b: []}
    for i in range(runs):
        order = [(a, run_a), (b, run_b)] if i % 2 == 0 else [(b, run_b), (a, run_a)]
        for name, run in order:
            times[name].append(run())
    return times


def child_start(work: Path, unisolated: bool) -> float:
    started = time.perf_counter()
    result = run_sandboxed(["python", "-c", "pass"], cwd=work, timeout_s=60, unisolated=unisolated)
    if result.returncode != 0:
        sys.exit(f"the child failed: {result.output_tail}")
    return time.perf_counter() - started


def probes_run(folder: Path, root: Path, datasets: Path, unisolated: bool, positions: int = 16) -> float:
    from tools.verify.probes import probe_record
    from tools.verify.sandbox import unisolated_mode

    started = time.perf_counter()
    with unisolated_mode(unisolated):
        checks = probe_record(folder, records_root=root / "records", datasets_root=datasets, rng_seed=0,
                              positions=positions)
    if any(check.status != "pass" for check in checks):
        sys.exit(f"the honest record did not pass: {[(c.id, c.status, c.message) for c in checks]}")
    return time.perf_counter() - started


def row(name: str, times: dict[str, list[float]], unit: float, label: str) -> str:
    boxed, bare = statistics.median(times["sandboxed"]), statistics.median(times["unisolated"])
    return (f"{name:<8} {len(times['sandboxed']):>4}  {bare * unit:>12.1f}  {boxed * unit:>12.1f}  "
            f"{(boxed - bare) * unit:>+10.1f}  {boxed / bare:>6.2f}x  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="`python -c pass` runs per arm")
    parser.add_argument("--probe-runs", type=int, default=4, help="probe_record runs per arm (0: skip)")
    parser.add_argument("--baseline-runs", type=int, default=2, help="probe_record runs on the baseline (0: skip)")
    args = parser.parse_args()
    ok, why = sandbox_available()
    if not ok:
        sys.exit(f"error: sandbox: {why}")
    with tempfile.TemporaryDirectory(prefix="pg-bench-sandbox-") as scratch:
        work = Path(scratch) / "record"
        work.mkdir()
        child_start(work, False)  # warm: the first call also probes bubblewrap
        start = abba(args.runs, {"sandboxed": lambda: child_start(work, False),
                                 "unisolated": lambda: child_start(work, True)})
        lines = [row("start", start, 1000, "ms, `python -c pass`")]
        if args.probe_runs:
            from tests.test_probes_kit import make_scorer_record, make_tree

            root, dataset = make_tree(Path(scratch) / "tree")
            folder = make_scorer_record(root, dataset, "honest")
            datasets = dataset.parent
            probes_run(folder, root, datasets, False)  # warm
            probes = abba(args.probe_runs, {"sandboxed": lambda: probes_run(folder, root, datasets, False),
                                            "unisolated": lambda: probes_run(folder, root, datasets, True)})
            lines.append(row("probes", probes, 1, "s, probe_record on the tiny honest record"))
            if args.baseline_runs:
                from tests.test_probes_baseline import BASELINE, baseline_record, train_baseline

                trainer = Path(scratch) / "train"
                trainer.mkdir()
                script = BASELINE.read_bytes()
                log, artifact = train_baseline(trainer, dataset, 7, script)
                real = baseline_record(root, "2026-03-01_baseline", 7, log, artifact, script)
                probes_run(real, root, datasets, False, positions=8)  # warm
                baseline = abba(args.baseline_runs, {
                    "sandboxed": lambda: probes_run(real, root, datasets, False, positions=8),
                    "unisolated": lambda: probes_run(real, root, datasets, True, positions=8)})
                lines.append(row("baseline", baseline, 1, "s, probe_record on the baseline's own scorer (torch)"))
    print(f"{'what':<8} {'runs':>4}  {'unisolated':>12}  {'sandboxed':>12}  {'overhead':>10}  {'ratio':>7}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

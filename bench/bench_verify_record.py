"""How fast is `verify record`? Target: under 1 s per record, dominated by reading files.

Builds synthetic trees with tests/recordkit.py in a temporary folder (removed afterwards) and prints a table of
wall times, the median of a few repeats:

  - importing the CLI module (fresh interpreter, minus the interpreter's own start-up)
  - `verify record --help` and `verify record PATH --json` as a user runs them (fresh process each time)
  - verify_record on a 3-seed record in-process (first record of its track: no history to judge)
  - judge_track over a track of 50 records, cold cache (every record loaded and judged once)
  - verify_record of the newest of those 50 (judges its whole history), cold and warm cache

Usage: python bench/bench_verify_record.py [--repeats N] [--records N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.recordkit import make_record, make_repo_tree, repo_env  # noqa: E402

TRACK = "track_cpu_shakespeare"


def median_time(action: Callable[[], object], repeats: int, before: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_process(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")


def build_history(root: Path, count: int) -> list[Path]:
    """`count` records a day apart, each 0.01 better than the last (so each becomes SOTA)."""
    folders = []
    for index in range(count):
        day = f"2026-{1 + index // 28:02d}-{1 + index % 28:02d}"
        center = 2.0 - 0.01 * index
        folders.append(make_record(root, name=f"{day}_r{index:03d}", date=day,
                                   bpbs=(center + 0.0011, center - 0.0009, center + 0.0002)))  # fmt: skip
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--records", type=int, default=50)
    args = parser.parse_args()

    from tools.verify.checks import sota
    from tools.verify.checks.verdict import verify_record

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench_verify_record_") as tmp:
        single_root = make_repo_tree(Path(tmp) / "single")
        single = make_record(single_root, artifacts=True)
        tree_root = make_repo_tree(Path(tmp) / "tree")
        history = build_history(tree_root, args.records)
        env = {**os.environ, **repo_env(single_root)}
        python = sys.executable

        bare = median_time(lambda: run_process([python, "-c", "pass"], env), args.repeats)
        cli_import = median_time(
            lambda: run_process([python, "-c", "import tools.verify.cli, tools.verify.commands.record"], env), args.repeats
        )
        rows.append(("import CLI module (fresh process, minus bare start-up)", cli_import - bare))
        rows.append(("verify record --help (fresh process)",
                     median_time(lambda: run_process([python, "-m", "tools.verify.cli", "record", "--help"], env),
                                 args.repeats)))  # fmt: skip
        rows.append(("verify record PATH --json, 3 seeds (fresh process)",
                     median_time(lambda: run_process([python, "-m", "tools.verify.cli", "record", str(single), "--json"],
                                                     env), args.repeats)))  # fmt: skip

        def clear() -> None:
            sota._cache.clear()

        kwargs = {"records_root": single_root / "records", "datasets_root": single_root / "data" / "datasets"}
        verify_record(single, **kwargs)  # warm imports (scipy, pydantic) so the row measures the work
        rows.append(("verify_record, 3 seeds (in-process)", median_time(lambda: verify_record(single, **kwargs),
                                                                         args.repeats, clear)))  # fmt: skip
        tree = {"records_root": tree_root / "records", "datasets_root": tree_root / "data" / "datasets"}
        judge = median_time(lambda: sota.judge_track(TRACK, **tree), args.repeats, clear)
        rows.append((f"judge_track over {args.records} records, cold cache", judge))
        rows.append(("  per record", judge / args.records))
        rows.append((f"verify_record of the newest of {args.records} (judges its history), cold",
                     median_time(lambda: verify_record(history[-1], **tree), args.repeats, clear)))  # fmt: skip
        verify_record(history[-1], **tree)
        rows.append((f"verify_record of the newest of {args.records}, warm cache",
                     median_time(lambda: verify_record(history[-1], **tree), args.repeats)))  # fmt: skip

    width = max(len(label) for label, _ in rows)
    print(f"{'what':<{width}}  median wall (s)   [repeats={args.repeats}, cpus={os.cpu_count()}]")
    print(f"{'-' * width}  ---------------")
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:>10.4f}")


if __name__ == "__main__":
    main()

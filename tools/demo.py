"""`make demo`: the main job on the embedded default, end to end.

prepare Shakespeare -> train the CPU baseline on each seed -> `submit record --from-logs` (assemble, verify,
accept) -> leaderboard.md regenerated. Every step is the same command a participant runs by hand; this module
only sequences them and says where to look. Knobs (environment): DEMO_SECONDS (training budget per seed, the
track's full budget is 180), DEMO_SEEDS (space-separated), DEMO_AUTHOR, DEMO_NAME (the record's name; its
folder is named after it and the date).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import sys
from pathlib import Path

TRACK = "track_cpu_shakespeare"
DATASET = "shakespeare_sp1024"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def run_step(title: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    print(f"\n==> {title}\n    $ {shlex.join(argv)}", flush=True)
    return subprocess.run(argv, cwd=repo_root(), env={**os.environ, **(env or {})}).returncode


def console_script(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def main() -> int:
    seconds = os.environ.get("DEMO_SECONDS", "180")
    seeds = os.environ.get("DEMO_SEEDS", "42 1337 2025").split()
    author = os.environ.get("DEMO_AUTHOR", "baseline")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")

    if run_step("Prepare the Shakespeare dataset", [sys.executable, "data/prepare.py", "shakespeare"]) != 0:
        return 2

    logs = []
    for seed in seeds:
        run_id = f"demo_{stamp}_seed{seed}"
        env = {"SEED": seed, "RUN_ID": run_id, "MAX_WALLCLOCK_SECONDS": seconds,
               "DATA_PATH": str(repo_root() / "data" / "datasets" / DATASET)}
        if run_step(f"Train the baseline, seed {seed}, {seconds} s", [sys.executable, "train_gpt.py"], env) != 0:
            print(f"error: training seed {seed} failed; see logs/{run_id}.txt", file=sys.stderr)
            return 1
        logs.append(f"logs/{run_id}.txt")

    name = os.environ.get("DEMO_NAME") or f"Baseline demo {stamp}"
    status = run_step(
        "Assemble, verify and submit the record",
        [console_script("submit"), "record", "--from-logs", *logs, "--track", TRACK, "--name", name,
         "--author", author, "--blurb", f"The CPU baseline, {len(seeds)} seed(s), {seconds} s each, made by make demo."],
    )
    print("\nWhere to look:")
    print(f"  training logs     {' '.join(logs)}")
    print(f"  records           records/{TRACK}/  (the new folder is named after '{name}')")
    print("  leaderboard       leaderboard.md")
    print("  experiment runs   .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark what MLflow tracking costs the trainer's timed loop (target: under 1%).

    python bench/bench_mlflow_overhead.py                 # 5 pairs of 150-step runs, metrics every step
    python bench/bench_mlflow_overhead.py --pairs 3 --steps 300 --log-every 100

Runs `train_gpt.py` for a fixed number of steps (no wall-clock cap), alternating a run without tracking and one
with MLFLOW_TRACKING_URI set to a fresh SQLite store, in ABBA order, so drift on a shared machine and the
position in a pair hit both sides alike. Per run it reads `train_time` (the timed loop) and the tracker's own
`mlflow: seconds_in_train_loop` line from the log. Reported: the median train time of each side, the median of
the paired ratios (with / without), and the median in-loop seconds the tracker itself spent. The default logs a
metric at every step: the worst case. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def last(pattern: str, text: str) -> str | None:
    found = re.findall(pattern, text, re.M)
    return found[-1] if found else None


def run(args: argparse.Namespace, run_id: str, workdir: Path, tracking_uri: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MLFLOW_TRACKING_URI")}
    env.update(RUN_ID=run_id, SEED="42", ITERATIONS=str(args.steps), MAX_WALLCLOCK_SECONDS="0",
               TORCH_NUM_THREADS=str(args.threads), DATA_PATH=str(Path(args.dataset).resolve()),
               TRAIN_LOG_EVERY=str(args.log_every), VAL_LOSS_EVERY="0")  # validations stop the clock: not measured
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    done = subprocess.run([sys.executable, str(REPO / "train_gpt.py")], cwd=workdir, env=env, capture_output=True, text=True)
    log = workdir / "logs" / f"{run_id}.txt"
    if done.returncode != 0 or not log.is_file():
        raise SystemExit(f"{run_id}: train_gpt.py failed (exit {done.returncode}): {done.stderr[-800:]}")
    text = log.read_text()
    in_loop = last(r"^mlflow: seconds_in_train_loop:(\S+)", text)
    return {"train_s": float(last(r"^train_time:(\d+)ms$", text)) / 1000, "in_loop_s": float(in_loop) if in_loop else 0.0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=5, help="runs per side, alternating (default 5)")
    p.add_argument("--steps", type=int, default=150, help="ITERATIONS per run (default 150)")
    p.add_argument("--log-every", type=int, default=1, help="TRAIN_LOG_EVERY: how often a metric is logged (default 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dataset", default=str(REPO / "data/datasets/shakespeare_sp1024"))
    args = p.parse_args()
    if not (Path(args.dataset) / "manifest.json").is_file():
        print(f"error: {args.dataset}/manifest.json not found; build it with: python data/prepare.py shakespeare", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_mlflow_") as tmp:
        workdir = Path(tmp)
        for i in range(args.pairs):
            uri = f"sqlite:///{workdir / 'mlflow.db'}"
            if i % 2 == 0:  # ABBA order: whichever side runs second in a pair is not always the same one
                plain, tracked = run(args, f"plain{i}", workdir, None), run(args, f"tracked{i}", workdir, uri)
            else:
                tracked, plain = run(args, f"tracked{i}", workdir, uri), run(args, f"plain{i}", workdir, None)
            rows.append((plain, tracked))
            print(f"pair {i}: without {plain['train_s']:.2f} s  with {tracked['train_s']:.2f} s  "
                  f"tracker in loop {tracked['in_loop_s'] * 1000:.1f} ms", file=sys.stderr, flush=True)
    ratios = [t["train_s"] / p_["train_s"] for p_, t in rows]
    in_loop = [t["in_loop_s"] / t["train_s"] for _, t in rows]
    print(f"steps {args.steps}  metric every {args.log_every} step(s)  threads {args.threads}  pairs {args.pairs}")
    print(f"{'':>28} {'median':>10} {'min':>10} {'max':>10}")
    for name, values, fmt in (
        ("train_s without MLflow", [p_["train_s"] for p_, _ in rows], ".2f"),
        ("train_s with MLflow", [t["train_s"] for _, t in rows], ".2f"),
        ("ratio with / without", ratios, ".4f"),
        ("tracker's own share of loop", in_loop, ".2e"),
    ):
        print(f"{name:>28} {statistics.median(values):>10{fmt}} {min(values):>10{fmt}} {max(values):>10{fmt}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

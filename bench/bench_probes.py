"""How long do `verify probes` take on the CPU track, and how much memory does the judge need?

Trains the baseline (train_gpt.py, the CPU track's default model size, a few iterations: the weights do not
change the cost) on the prepared Shakespeare dataset, makes a one-seed record of it in a temporary folder (removed
afterwards), and probes it with each rescore chunk size asked for. The full-distribution rescore of ~250K targets
x V=1024 is ~1 GB of float32 written by the scorer and streamed through by the judge. Prints a table:

  chunk_mb  calls  call_shape  windows  probe_rows  probe_share  wall_s  output_mb  judge_peak_rss_mb  ...

All three verdicts come from the same calls (every call one shape, scoring windows and carrying probe rows), so
the probes' cost is their share of the rows scored (`probe_share`).

Usage: python bench/bench_probes.py [--iterations N] [--chunk-mb 64,256] [--positions 16]
Needs data/datasets/shakespeare_sp1024 (python data/prepare.py shakespeare).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.recordkit import TRACKS_TOML  # noqa: E402
from tests.test_probes_baseline import baseline_record  # noqa: E402
from tools.text_table import format_table  # noqa: E402
from tools.verify.probes import probe_record  # noqa: E402

DATASET = "shakespeare_sp1024"


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def train(work: Path, datasets: Path, iterations: int, script: bytes) -> tuple[Path, Path, float]:
    run_id = "bench_probes"
    (work / "train_gpt.py").write_bytes(script)  # a snapshot: the repository's file may change meanwhile
    env = {**os.environ, "DATA_PATH": str(datasets / DATASET), "SEED": "1", "RUN_ID": run_id,
           "ITERATIONS": str(iterations), "MAX_WALLCLOCK_SECONDS": "0", "TORCH_NUM_THREADS": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "train_gpt.py"], cwd=work, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"training failed:\n{done.stderr[-3000:]}")
    return work / "logs" / f"{run_id}.txt", work / "logs" / run_id / "final_model.int8.ptz", time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--chunk-mb", default="64,256", help="comma-separated rescore chunk sizes in MiB")
    parser.add_argument("--positions", type=int, default=16)
    args = parser.parse_args()
    datasets = REPO / "data" / "datasets"
    if not (datasets / DATASET / "manifest.json").is_file():
        sys.exit(f"{datasets / DATASET} is not prepared; run: python data/prepare.py shakespeare")

    tmp = Path(tempfile.mkdtemp(prefix="bench-probes-"))
    try:
        root = tmp / "repo"
        (root / "records" / "track_cpu_shakespeare").mkdir(parents=True)
        (root / "records" / "tracks.toml").write_text(TRACKS_TOML)
        work = tmp / "work"
        work.mkdir()
        script = (REPO / "train_gpt.py").read_bytes()
        log, artifact, train_s = train(work, datasets, args.iterations, script)
        print(f"trained the baseline for {args.iterations} iterations in {train_s:.1f} s (not part of the probes)")
        record = baseline_record(root, "2026-03-01_bench", 1, log, artifact, script)
        header = ("chunk_mb", "calls", "call_shape", "windows", "probe_rows", "probe_share", "wall_s", "output_mb",
                  "judge_peak_rss_mb", "scorer_peak_rss_mb", "verdicts")
        rows = [header]
        problems = []
        for chunk_mb in (int(x) for x in args.chunk_mb.split(",")):
            started = time.perf_counter()
            checks = probe_record(record, records_root=root / "records", datasets_root=datasets, rng_seed=0,
                                  positions=args.positions, chunk_bytes=chunk_mb * 1024**2)
            total_s = time.perf_counter() - started
            by_id = {c.id: c for c in checks}
            causality = by_id["causality"].evidence["seeds"]["1"]
            rescore = by_id["rescore"].evidence["seeds"]["1"]
            vocab = by_id["rescore"].evidence["vocab_size"]
            shape = causality.get("call_shape", [0, 0])
            output_mb = causality.get("calls", 0) * shape[0] * shape[1] * vocab * 4 / 1024**2
            windows, probe_rows = rescore.get("windows", 0), causality.get("probe_rows", 0)
            problems += [f"{chunk_mb} MiB: {c.id}: {c.message}" for c in checks if c.status != "pass"]
            judge, scorer = peak_rss_mb(resource.RUSAGE_SELF), peak_rss_mb(resource.RUSAGE_CHILDREN)
            rows.append((str(chunk_mb), str(causality.get("calls", "-")), f"{shape[0]}x{shape[1]}", str(windows),
                         str(probe_rows), f"{probe_rows / max(1, windows + probe_rows):.1%}", f"{total_s:.1f}",
                         f"{output_mb:.0f}", f"{judge:.0f}", f"{scorer:.0f}",
                         "/".join(by_id[k].status for k in ("normalization", "causality", "rescore"))))
        print("\n".join(format_table(rows)))
        print("peak RSS is the process's maximum so far (judge: this process; scorer: the largest child)")
        for problem in problems:
            print(problem)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

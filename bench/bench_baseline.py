"""Benchmark the baseline trainer on the CPU track: one full training run per seed, then a summary table.

    python bench/bench_baseline.py                      # 180 s per seed, seeds 42 1337 2025, 2 threads
    python bench/bench_baseline.py --seconds 60 --seeds 42
    python bench/bench_baseline.py --dataset data/datasets/shakespeare_byte --env MODEL_DIM=96

Each seed runs `train_gpt.py` as a child process (TORCH_NUM_THREADS and MAX_WALLCLOCK_SECONDS set as on the
track) and is read back from its log (docs/CONTRACTS.md section 2). Reported per seed: the round-trip val_bpb,
steps, training tokens/s and bytes/s (bytes/s = tokens/s times the training split's bytes per token from the
manifest), the child's peak RSS (from wait4), the final evaluation time, and the load average before and after
(the machine may be shared: a load above the thread count means the numbers are pessimistic). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_log(text: str) -> dict:
    def last(pattern: str) -> str | None:
        found = re.findall(pattern, text, re.M)
        return found[-1] if found else None

    hyper = dict(re.findall(r"(\w+)=(\S*)", last(r"^hyperparameters: (.*)$") or ""))
    steps = last(r"^step:(\d+)/\d+ ")
    return {
        "val_bpb": float(last(r"^final_int8_zlib_roundtrip_exact val_loss:\S+ val_bpb:(\S+)$") or "nan"),
        "steps": int(steps) if steps else 0,
        "train_ms": float(last(r"^train_time:(\d+)ms$") or "nan"),
        "eval_ms": float(last(r"^eval_time:(\d+)ms$") or "nan"),
        "batch_tokens": int(hyper.get("TRAIN_BATCH_TOKENS", "0")),
        "artifact_bytes": int(last(r"^Serialized model int8\+zlib: (\d+) bytes$") or 0),
        "logged_peak_mib": int(last(r"^peak memory allocated: (\d+) MiB$") or 0),
    }


def run_seed(seed: int, args: argparse.Namespace, run_id: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(SEED=str(seed), RUN_ID=run_id, MAX_WALLCLOCK_SECONDS=str(args.seconds),
               TORCH_NUM_THREADS=str(args.threads), DATA_PATH=args.dataset)
    env.update(kv.split("=", 1) for kv in args.env)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(REPO / "logs" / f"{run_id}.stdout", "wb") as out:
        child = subprocess.Popen([sys.executable, str(REPO / "train_gpt.py")], cwd=REPO, env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    result = {"seed": seed, "rc": child.returncode, "wall_s": time.perf_counter() - start,
              "rss_mib": usage.ru_maxrss / 1024, "load": (load_before, os.getloadavg()[0])}
    log = REPO / "logs" / f"{run_id}.txt"
    if child.returncode == 0 and log.is_file():
        result.update(parse_log(log.read_text()))
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=180.0, help="MAX_WALLCLOCK_SECONDS per seed (track: 180)")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 1337, 2025])
    p.add_argument("--dataset", default="data/datasets/shakespeare_sp1024", help="DATA_PATH (dataset folder)")
    p.add_argument("--threads", type=int, default=2, help="TORCH_NUM_THREADS (track: 2)")
    p.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment for the trainer")
    args = p.parse_args()
    manifest_path = Path(args.dataset if Path(args.dataset).is_absolute() else REPO / args.dataset) / "manifest.json"
    if not manifest_path.is_file():
        print(f"error: {manifest_path} not found; build it with: python data/prepare.py shakespeare", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    bytes_per_token = manifest["train_bytes"] / manifest["train_tokens"]
    (REPO / "logs").mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    rows = []
    for seed in args.seeds:
        r = run_seed(seed, args, f"bench_{stamp}_seed{seed}")
        if r["rc"] != 0 or "val_bpb" not in r:
            print(f"seed {seed}: failed (exit {r['rc']}); see logs/bench_{stamp}_seed{seed}.stdout", file=sys.stderr)
            return 1
        r["tok_s"] = r["steps"] * r["batch_tokens"] / (r["train_ms"] / 1000)
        r["bytes_s"] = r["tok_s"] * bytes_per_token
        rows.append(r)
        print(f"seed {seed} done: val_bpb {r['val_bpb']:.4f} in {r['wall_s']:.0f} s", file=sys.stderr, flush=True)
    header = f"{'seed':>6} {'val_bpb':>9} {'steps':>6} {'train_s':>8} {'tok/s':>8} {'bytes/s':>8} {'rss_MiB':>8} {'eval_s':>7} {'artifact':>9}  load"
    print(f"dataset {manifest.get('dataset')}  seconds {args.seconds:g}  threads {args.threads}  cpus {os.cpu_count()}")
    print(header)
    for r in rows:
        print(f"{r['seed']:>6} {r['val_bpb']:>9.4f} {r['steps']:>6} {r['train_ms'] / 1000:>8.1f} {r['tok_s']:>8.0f} "
              f"{r['bytes_s']:>8.0f} {r['rss_mib']:>8.0f} {r['eval_ms'] / 1000:>7.2f} {r['artifact_bytes']:>9}  "
              f"{r['load'][0]:.1f}->{r['load'][1]:.1f}")
    for key, fmt in (("val_bpb", ".4f"), ("steps", ".0f"), ("tok_s", ".0f"), ("bytes_s", ".0f"), ("rss_mib", ".0f"), ("eval_ms", ".0f")):
        values = [r[key] for r in rows]
        spread = max(values) - min(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{key:>8}: median {statistics.median(values):{fmt}}  spread (max-min) {spread:{fmt}}  std {std:{fmt}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

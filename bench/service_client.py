"""A client of the run service that plays the real call pattern: POST /run, poll GET /runs/run-N every ~20 s until
the run is done, then the next POST /run, and finally GET /runs.

    python bench/service_client.py --url http://127.0.0.1:8000 --token TOKEN train_a.py train_b.py
    python bench/service_client.py --token-file ~/.pg_token --poll 5 --json train.py
    python bench/service_client.py --token TOKEN --submit-best "Alice A." a.py b.py   # then make the best a record

Each POST carries an Idempotency-Key (the file's sha256 and its place in the list) and is retried on connection
errors and 5xx with the same key, so a retry never starts a second run. Over budget (429) it stops and prints when
the budget resets (or, with --wait-budget, sleeps until then). One line per poll; at the end a table of the
caller's runs (or one JSON object with --json). Standard library only: it runs wherever Python does.
Exit codes: 0 every submitted run finished, 1 a run failed or timed out, 2 bad usage or the service refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

FINISHED = ("succeeded", "failed", "timed_out")


class ServiceError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(f"HTTP {status}: {body.get('error', body)}")
        self.status, self.body = status, body


class Client:
    def __init__(self, url: str, token: str, timeout_s: float = 30.0, retries: int = 5, log=print):
        self.url, self.token, self.timeout_s, self.retries, self.log = url.rstrip("/"), token, timeout_s, retries, log

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        """JSON in, JSON out; connection errors and 5xx are retried (with backoff); 4xx raise ServiceError."""
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as problem:
                payload = _json(problem.read())
                if problem.code < 500 or attempt == self.retries:
                    raise ServiceError(problem.code, payload) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as problem:
                if attempt == self.retries:
                    raise ServiceError(0, {"error": f"cannot reach {self.url}: {problem}"}) from None
            wait = min(30.0, 2.0**attempt)
            self.log(f"  retrying {method} {path} in {wait:g} s")
            time.sleep(wait)
        raise AssertionError("unreachable")

    def submit(self, code: str, name: str | None, key: str) -> dict:
        return self.request("POST", "/run", {"train_code": code, "name": name}, {"Idempotency-Key": key})

    def run(self, run_id: str) -> dict:
        return self.request("GET", f"/runs/{run_id}")

    def runs(self) -> list[dict]:
        return self.request("GET", "/runs")["runs"]

    def budget(self) -> dict:
        return self.request("GET", "/budget")

    def submit_record(self, run_id: str, author: str, name: str | None) -> dict:
        return self.request("POST", f"/runs/{run_id}/submit", {"author": author, "name": name})

    def submission(self, submission_id: str) -> dict:
        return self.request("GET", f"/submissions/{submission_id}")


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw)
        return value if isinstance(value, dict) else {"error": str(value)[:500]}
    except ValueError:
        return {"error": raw[:500].decode(errors="replace")}


def idempotency_key(code: str, index: int) -> str:
    return f"{hashlib.sha256(code.encode()).hexdigest()[:32]}-{index}"


def wait_until_done(client: Client, run_id: str, poll_s: float, log=print) -> dict:
    started, last_status = time.monotonic(), None
    while True:
        state = client.run(run_id)
        status = state["status"]
        if status != last_status or status in FINISHED:
            where = f" (queue position {state['queue_position']})" if state.get("queue_position") else ""
            log(f"  {run_id}: {status}{where} after {time.monotonic() - started:.0f} s")
            last_status = status
        if status in FINISHED:
            return state
        time.sleep(poll_s)


def fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec) if isinstance(value, (int, float)) else str(value)


def table(runs: list[dict]) -> str:
    header = ("run", "status", "val_bpb", "reported", "flags", "train s", "eval s", "wall s", "reason")
    rows = [header] + [(r["run_id"], r["status"], fmt(r["val_bpb"]), fmt(r["reported_val_bpb"]),
                        ",".join(r.get("flags") or []) or "-", fmt(r["training_seconds"], ".1f"),
                        fmt(r["eval_seconds"], ".1f"), fmt(r["wall_seconds"], ".1f"), (r["reason"] or "")[:70])
                       for r in runs]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def play(client: Client, files: list[Path], poll_s: float, wait_budget: bool, name_prefix: str,
         log=print) -> tuple[list[dict], list[dict]]:
    """Submit each file in turn and wait for it: (the final states of the submitted runs, GET /runs)."""
    finished = []
    for index, path in enumerate(files):
        code = path.read_text(encoding="utf-8")
        while True:
            try:
                accepted = client.submit(code, f"{name_prefix}{path.stem}", idempotency_key(code, index))
                break
            except ServiceError as problem:
                if problem.status != 429 or not wait_budget:
                    raise
                resets = problem.body.get("retry_after_seconds") or 60
                log(f"over budget ({problem.body.get('limit')}); waiting {resets} s until {problem.body.get('resets_at')}")
                time.sleep(resets)
        log(f"{path.name}: {accepted['run_id']} {accepted['status']} (queue position {accepted['queue_position']})")
        finished.append(wait_until_done(client, accepted["run_id"], poll_s, log))
    return finished, client.runs()


def best_run(finished: list[dict]) -> dict | None:
    scored = [run for run in finished if run["status"] == "succeeded" and run.get("val_bpb") is not None]
    return min(scored, key=lambda run: run["val_bpb"], default=None)


def make_record(client: Client, run: dict, author: str, poll_s: float, log=print) -> dict:
    """POST /runs/{id}/submit for `run`, then poll the submission until it is judged or failed."""
    submission = client.submit_record(run["run_id"], author, run.get("name"))
    seeds = ", ".join(f"{s['seed']} ({s['run_id']})" for s in submission["seeds"])
    log(f"record from {run['run_id']} (val_bpb {run['val_bpb']:.4f}): {submission['submission_id']}, seeds {seeds}")
    last = None
    while submission["status"] == "running":
        done = sum(s["status"] in FINISHED for s in submission["seeds"])
        if done != last:
            log(f"  {submission['submission_id']}: {done}/{len(submission['seeds'])} seed runs finished")
            last = done
        time.sleep(poll_s)
        submission = client.submission(submission["submission_id"])
    log(f"  {submission['submission_id']}: {submission['status']}: {submission['reason']}")
    if submission.get("record_path"):
        log(f"  record folder: {submission['record_path']}")
    return submission


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="training files, submitted one after the other")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    token = parser.add_mutually_exclusive_group(required=True)
    token.add_argument("--token")
    token.add_argument("--token-file", type=Path)
    parser.add_argument("--poll", type=float, default=20.0, help="seconds between polls (default 20)")
    parser.add_argument("--name-prefix", default="", help="prefix of each run's name (the file's stem follows)")
    parser.add_argument("--wait-budget", action="store_true", help="on 429, sleep until the budget resets")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end instead of a table")
    parser.add_argument("--submit-best", metavar="AUTHOR", default=None,
                        help="then turn the best succeeded run into a record by AUTHOR (POST /runs/{id}/submit: "
                             "its code re-runs on the record seeds) and wait for the judge's verdict")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        print(f"error: files: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    secret = args.token or args.token_file.read_text().strip()
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    client = Client(args.url, secret, log=log)
    try:
        finished, runs = play(client, args.files, args.poll, args.wait_budget, args.name_prefix, log)
        record = None
        if args.submit_best is not None:
            best = best_run(finished)
            if best is None:
                print("error: --submit-best: no run succeeded", file=sys.stderr)
                return 1
            record = make_record(client, best, args.submit_best, args.poll, log)
            runs = client.runs()
        budget = client.budget()
    except ServiceError as problem:
        print(f"error: {args.url}: {problem}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"submitted": finished, "runs": runs, "budget": budget, "record": record}))
    else:
        print(table(runs))
        print(f"budget: {budget['runs']['remaining']} runs and {budget['hours']['remaining']:.2f} h left")
    ok = all(run["status"] == "succeeded" for run in finished)
    return 0 if ok and (record is None or record["status"] == "judged") else 1


if __name__ == "__main__":
    sys.exit(main())

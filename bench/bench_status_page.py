"""Check the run service's status page (GET /) in a real headless browser: Chromium renders the page of a real
service and the rendered DOM is checked, and a screenshot is kept to look at.

    python bench/bench_status_page.py                        # screenshot in logs/bench/status_page.png
    python bench/bench_status_page.py --screenshot /tmp/page.png

The service runs in this process (uvicorn in a thread, on 127.0.0.1 and a port the system picks) with the real API,
engine, store and workers, a temporary state folder and a stand-in executor (no sandbox, no training: each file
says how its run ends, e.g. `# bench: val_bpb=1.71`). Several participants (one with a hostile name) submit over
HTTP; runs succeed, fail or time out; then one run is held running and one more waits in the queue. Chromium
(Debian's `chromium` package) is run twice, `--dump-dom` and `--screenshot`, with a throwaway profile, no proxy,
and every host name but 127.0.0.1 unresolvable. Checked in the rendered DOM: the title, the best-per-participant
rows, the queue row, the recent runs, one <svg> with one polyline per participant with a score and a cross per
run without one, no <script> and nothing to fetch; and that the screenshot is a 1280x1600 PNG.

Prints a table of checks and the screenshot's path. Exit codes: 0 every check passed, 1 a check failed, 2 Chromium
is missing or the service did not start. Everything started here (server, workers, browsers) is stopped on the way
out, failure or not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.service.api import create_app  # noqa: E402
from tools.service.config import Budget, ServiceConfig  # noqa: E402
from tools.service.engine import Engine  # noqa: E402
from tools.service.outcome import FAILED, SUCCEEDED, TIMED_OUT  # noqa: E402
from tools.service.runner import RunJob, RunResult  # noqa: E402
from tools.service.store import Store  # noqa: E402
from tools.text_table import format_table  # noqa: E402

INSTALL = "chromium is missing: install it with `apt-get update && apt-get install -y chromium` (Debian), then rerun"
HOSTILE = "carol <script>alert(1)</script>"
# Each participant's runs in order: a val_bpb, or how the run ended without one.
PLAN: dict[str, list[float | str]] = {
    "alice": [1.92, 1.71, FAILED, 1.55, 1.49, TIMED_OUT, 1.47],
    "bob": [2.05, FAILED, 1.88, 1.80],
    HOSTILE: [1.98, 1.63, 1.60],
    "dave": [FAILED, 2.20, 1.95, 1.76, 1.58, 1.52],
}
HELD_BY, QUEUED_BY = "alice", "bob"  # after the plan: alice's next run is held running, bob's next one waits
DIRECTIVE = re.compile(r"# bench: (\S+)")
BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


class Executor:
    """Ends each run as its file says (`# bench: val_bpb=X`, `failed`, `timed_out`, `hold`); `hold` waits for the
    gate, which stop() opens."""

    def __init__(self):
        self.gate = threading.Event()

    def __call__(self, job: RunJob) -> RunResult:
        match = DIRECTIVE.search(job.code)
        what = match.group(1) if match else "failed"
        if what == "hold":
            self.gate.wait(60)
            what = "val_bpb=1.40"
        if what.startswith("val_bpb="):
            value = float(what.split("=", 1)[1])
            return RunResult(status=SUCCEEDED, reason="scored by the service (bench stand-in)", val_bpb=value,
                             reported={"val_bpb": value}, reported_val_bpb=value, isolation="none (bench)")
        reason = "ran past its time limit (bench stand-in)" if what == TIMED_OUT else "exit status 1 (bench stand-in)"
        return RunResult(status=TIMED_OUT if what == TIMED_OUT else FAILED, reason=reason, isolation="none (bench)")


class Service:
    """The real app under uvicorn in a thread, on a loopback socket bound here (no port race)."""

    def __init__(self, state_dir: Path):
        import uvicorn

        config = ServiceConfig(state_dir=state_dir, dataset_dir=state_dir / "unused", time_budget_s=60.0,
                               grace_s=10.0, eval_allowance_s=30.0, budget=Budget(runs=100, hours=1000.0))
        self.store = Store(config.database)
        self.executor = Executor()
        self.engine = Engine(config, self.store, self.executor)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(config, self.store, self.engine), log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True,
                                       name="uvicorn")

    def start(self, timeout_s: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.executor.gate.set()  # a held run finishes, so its worker can stop
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(30)
        self.socket.close()

    def call(self, method: str, path: str, token: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(self.url + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def submit(self, token: str, directive: str, name: str) -> str:
        return self.call("POST", "/run", token, {"train_code": f"import prepare\n# bench: {directive}\n",
                                                 "name": name})["run_id"]

    def wait(self, token: str, run_id: str, done: tuple[str, ...], timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.call("GET", f"/runs/{run_id}", token)["status"]
            if status in done or time.monotonic() > deadline:
                return status
            time.sleep(0.05)


def populate(service: Service) -> str:
    """Every participant's planned runs, finished; then a held run and a queued one. Returns the queued run's id."""
    tokens = {name: service.store.create_token(name) for name in PLAN}
    last: dict[str, str] = {}
    for index in range(max(len(runs) for runs in PLAN.values())):  # interleaved, as participants would
        for name, runs in PLAN.items():
            if index < len(runs):
                outcome = runs[index]
                directive = f"val_bpb={outcome}" if isinstance(outcome, float) else outcome
                last[name] = service.submit(tokens[name], directive, f"try {index}")
    for name, run_id in last.items():  # one worker, in order: the last of each done means all are
        service.wait(tokens[name], run_id, (SUCCEEDED, FAILED, TIMED_OUT))
    held = service.submit(tokens[HELD_BY], "hold", "held")
    service.wait(tokens[HELD_BY], held, ("running",))
    return service.submit(tokens[QUEUED_BY], "val_bpb=1.70", "waiting")


def browse(chromium: str, flags: list[str], url: str, profile: Path, timeout_s: float) -> tuple[int, str, str]:
    """Run Chromium in its own process group; whatever it leaves (or a hang) is killed with the group."""
    process = subprocess.Popen([chromium, *BROWSER_FLAGS, f"--user-data-dir={profile}", *flags, url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "HOME": str(profile)})
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        out, err = "", f"timed out after {timeout_s:g} s"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return process.returncode, out, err


class Dom(HTMLParser):
    """What the checks need from the rendered DOM: title, tables under each <h2>, the svg's shapes, tags seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.title = ""
        self.heading = ""
        self.tables: dict[str, list[list[str]]] = {}
        self.svgs: list[dict] = []
        self.tags: list[tuple[str, dict]] = []
        self._cell: list[str] | None = None
        self._h2: list[str] | None = None
        self._title: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attrs))
        if tag == "title" and "svg" not in self.stack:
            self._title = []
        elif tag == "h2":
            self._h2 = []
        elif tag == "table":
            self.tables[self.heading] = []
        elif tag == "tr" and self.heading in self.tables:
            self.tables[self.heading].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "svg":
            self.svgs.append({"attrs": attrs, "polylines": [], "no_score": 0, "text": []})
        elif tag == "polyline" and self.svgs:
            self.svgs[-1]["polylines"].append(attrs)
        elif tag == "path" and self.svgs and attrs.get("class") == "no-score":
            self.svgs[-1]["no_score"] += 1
        if tag not in ("meta", "br", "link", "img", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass
        if tag == "title" and self._title is not None:
            self.title, self._title = "".join(self._title).strip(), None
        elif tag == "h2" and self._h2 is not None:
            self.heading, self._h2 = "".join(self._h2).strip(), None
        elif tag in ("td", "th") and self._cell is not None:
            if self.heading in self.tables and self.tables[self.heading]:
                self.tables[self.heading][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        for part in (self._title, self._h2, self._cell):
            if part is not None:
                part.append(data)
        if self.svgs and "text" in self.stack and "title" not in self.stack:
            self.svgs[-1]["text"].append(data)


def png_size(path: Path) -> tuple[int, int] | None:
    data = path.read_bytes()[:24] if path.exists() else b""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", data[16:24])


def expectations() -> tuple[list[list[str]], int, int]:
    """(best rows as shown: rank, participant, val_bpb; number of runs; runs without a score)."""
    best = sorted(((min(v for v in runs if isinstance(v, float)), name) for name, runs in PLAN.items()))
    rows = [[str(rank), name, f"{value:.4f}"] for rank, (value, name) in enumerate(best, start=1)]
    runs = sum(len(r) for r in PLAN.values())
    return rows, runs, sum(1 for r in PLAN.values() for v in r if not isinstance(v, float))


def check_dom(dom: Dom, queued_label: str) -> list[tuple[str, bool, str]]:
    best_rows, total, unscored = expectations()
    checks = []
    checks.append(("title", dom.title == "run service", repr(dom.title)))
    shown = [row[:3] for row in dom.tables.get("Best per participant", [])[1:]]
    checks.append(("best per participant rows", shown == best_rows,
                   "; ".join(" ".join(r) for r in shown) or "no table"))
    queue = dom.tables.get("Queue", [])[1:]
    expected_queue = [["1", QUEUED_BY, queued_label, "waiting"]]
    checks.append(("queue row", [row[:4] for row in queue] == expected_queue,
                   "; ".join(" ".join(r[:4]) for r in queue) or "no table"))
    recent = dom.tables.get("Recent runs", [])[1:]
    statuses = sorted(row[3] for row in recent if len(row) > 3)
    checks.append(("recent runs rows", len(recent) == total + 2 and statuses.count("running") == 1
                   and statuses.count("queued") == 1, f"{len(recent)} rows (expected {total + 2})"))
    checks.append(("one <svg> plot", len(dom.svgs) == 1, f"{len(dom.svgs)} svg element(s)"))
    svg = dom.svgs[0] if dom.svgs else {"polylines": [], "no_score": 0, "text": [], "attrs": {}}
    series = [line.get("data-participant") for line in svg["polylines"]]
    checks.append(("one polyline per participant", sorted(series) == sorted(PLAN),
                   f"{len(series)} polylines: {', '.join(map(repr, series))}"))
    points = {line.get("data-participant"): len(line.get("points", "").split()) for line in svg["polylines"]}
    scored = {name: sum(isinstance(v, float) for v in runs) for name, runs in PLAN.items()}
    checks.append(("points per polyline = scored runs", points == scored, json.dumps(points)))
    checks.append(("failed runs marked on the axis", svg["no_score"] == unscored,
                   f"{svg['no_score']} marks (expected {unscored})"))
    legend = " ".join(svg["text"])
    checks.append(("axis labels and legend", "run number" in legend and "val_bpb" in legend
                   and all(name[:19] in legend for name in PLAN), legend[:80] + "..."))
    scripts = [tag for tag, _ in dom.tags if tag in ("script", "iframe", "object", "embed")]
    fetches = [f"{tag} {attrs.get('src') or attrs.get('href')}" for tag, attrs in dom.tags
               if attrs.get("src") or (tag == "link" and attrs.get("href"))
               or attrs.get("href", "").startswith(("http:", "https:", "//"))]
    checks.append(("no script, nothing fetched", not scripts and not fetches,
                   ", ".join(scripts + fetches) or "none; hostile name shown as text"))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path, default=REPO / "logs" / "bench" / "status_page.png")
    parser.add_argument("--browser-timeout", type=float, default=90.0, help="seconds per Chromium run")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print(INSTALL)
        return 2
    args.screenshot = args.screenshot.resolve()
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    args.screenshot.unlink(missing_ok=True)
    checks: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="pg-bench-page-") as tmp:
        try:
            service = Service(Path(tmp) / "state")
            service.start()
        except Exception as problem:
            print(f"error: the service did not start: {type(problem).__name__}: {problem}")
            return 2
        try:
            started = time.perf_counter()
            queued_label = populate(service)
            seeded_s = time.perf_counter() - started
            started = time.perf_counter()
            rc, dom_text, err = browse(chromium, ["--dump-dom"], service.url + "/", Path(tmp) / "profile-dom",
                                       args.browser_timeout)
            dom_s = time.perf_counter() - started
            checks.append(("chromium --dump-dom", rc == 0 and "<html" in dom_text,
                           f"rc {rc}, {len(dom_text)} chars, {dom_s:.1f} s" + (f": {err.strip()[-120:]}"
                                                                               if rc else "")))
            dom = Dom()
            dom.feed(dom_text)
            checks += check_dom(dom, queued_label)
            started = time.perf_counter()
            rc, _, err = browse(chromium, [f"--screenshot={args.screenshot}", "--window-size=1280,1600"],
                                service.url + "/", Path(tmp) / "profile-shot", args.browser_timeout)
            size = png_size(args.screenshot)
            checks.append(("screenshot 1280x1600 PNG", rc == 0 and size == (1280, 1600),
                           f"rc {rc}, size {size}, {time.perf_counter() - started:.1f} s"
                           + (f": {err.strip()[-120:]}" if rc else "")))
        finally:
            service.stop()
    print(f"status page of a real run service at 127.0.0.1 in headless {chromium_version(chromium)}: "
          f"{len(PLAN)} participants, {sum(map(len, PLAN.values()))} finished runs seeded over HTTP in "
          f"{seeded_s:.1f} s, 1 running, 1 queued")
    rows = [("check", "result", "detail")] + [(name, "ok" if ok else "FAIL", detail) for name, ok, detail in checks]
    for line in format_table(rows, loose=[2]):
        print(line)
    print(f"screenshot: {args.screenshot}")
    failed = [name for name, ok, _ in checks if not ok]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed" + (f"; failed: {', '.join(failed)}"
                                                                        if failed else ""))
    return 1 if failed else 0


def chromium_version(chromium: str) -> str:
    try:
        out = subprocess.run([chromium, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "chromium"
    return out.strip() or "chromium"


if __name__ == "__main__":
    sys.exit(main())

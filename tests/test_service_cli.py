"""`submit serve` end to end: tokens from the command line, a real uvicorn on loopback, bench/service_client.py
playing the real call pattern (POST /run, poll, next POST /run, GET /runs) against two real sandboxed runs, and a
restart that keeps the finished runs and fails the one that was running when the service died."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_service_kit import fake_score_code, honest_code, tiny_dataset
from tools.service.engine import INTERRUPTED

REPO = Path(__file__).resolve().parents[1]
SUBMIT = [sys.executable, "-m", "tools.submit.cli"]


def submit(*args: str, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*SUBMIT, "serve", "--state-dir", str(state), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return json.loads(response.read())


class Server:
    def __init__(self, state: Path, dataset: Path, port: int, time_budget: float = 1.0):
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(state.parent / f"server-{port}-{time.monotonic_ns()}.log", "w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [*SUBMIT, "serve", "--state-dir", str(state), "--dataset-dir", str(dataset), "--port", str(port),
             "--time-budget", str(time_budget)], cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/", timeout=2).read()
                return
            except OSError:
                assert self.process.poll() is None, self.tail()
                time.sleep(0.2)
        raise AssertionError(f"the service did not come up: {self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def test_tokens_from_the_command_line(tmp_path):
    state = tmp_path / "state"
    created = submit("token", "create", "alice", state=state)
    assert created.returncode == 0 and created.stdout.strip().startswith("pgs_")
    again = submit("token", "create", "alice", state=state)
    assert again.returncode == 2 and again.stderr.startswith("error: NAME:") and "exists" in again.stderr
    assert submit("token", "list", state=state).stdout.split() == ["alice", "active"]
    assert submit("token", "revoke", "alice", state=state).returncode == 0
    assert submit("token", "list", state=state).stdout.split() == ["alice", "revoked"]
    assert (state / ".gitignore").read_text().strip().endswith("*")  # state never gets committed
    help_text = subprocess.run([*SUBMIT, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    assert "serve" in help_text


@pytest.mark.slow
def test_the_client_plays_the_call_pattern_and_a_restart_keeps_the_runs(tmp_path):
    state, dataset = tmp_path / "state", tiny_dataset(tmp_path)
    token = submit("token", "create", "agent", state=state).stdout.strip()
    files = []
    for name, code in (("honest", honest_code()), ("liar", fake_score_code())):
        files.append(tmp_path / f"{name}.py")
        files[-1].write_text(code)
    port = free_port()
    server = Server(state, dataset, port)
    try:
        second = submit("--dataset-dir", str(dataset), "--port", str(free_port()), state=state)
        assert second.returncode == 2 and "another service is running" in second.stderr
        played = subprocess.run([sys.executable, "bench/service_client.py", "--url", server.url, "--token", token,
                                 "--poll", "1", "--json", *map(str, files)], cwd=REPO, capture_output=True,
                                text=True, timeout=300)
        assert played.returncode == 0, played.stderr[-2000:] + server.tail()
        report = json.loads(played.stdout)
        honest, liar = report["submitted"]
        assert (honest["run_id"], liar["run_id"]) == ("run-0", "run-1")
        assert honest["status"] == liar["status"] == "succeeded"
        assert honest["val_bpb"] == honest["reported_val_bpb"] and not honest["reported_mismatch"]
        assert liar["reported_val_bpb"] == 0.25 and liar["reported_mismatch"] and liar["val_bpb"] > 1.0
        assert [r["run_id"] for r in report["runs"]] == ["run-0", "run-1"] and report["budget"]["runs"]["used"] == 2
        assert "run-1" in urllib.request.urlopen(server.url + "/", timeout=10).read().decode()
        # A third run is running when the service dies: after the restart it is failed, the others are kept.
        slow = (tmp_path / "slow.py")
        slow.write_text("import time\ntime.sleep(60)\n")
        request = urllib.request.Request(server.url + "/run", method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            data=json.dumps({"train_code": slow.read_text()}).encode())
        assert json.loads(urllib.request.urlopen(request, timeout=10).read())["run_id"] == "run-2"
        deadline = time.monotonic() + 30
        while get(server.url + "/runs/run-2", token)["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
    restarted = Server(state, dataset, free_port())
    try:
        runs = {r["run_id"]: r for r in get(restarted.url + "/runs", token)["runs"]}
        assert runs["run-0"]["status"] == runs["run-1"]["status"] == "succeeded"
        assert runs["run-2"]["status"] == "failed" and runs["run-2"]["reason"] == INTERRUPTED
    finally:
        restarted.stop()

"""tools.verify.sandbox.run_sandboxed: the only way a record's code runs. Each limit it promises is tried here with
a child that tries to break it: outliving a timeout (with grandchildren, also ones that leave the process group),
outliving a clean exit, reading the parent's secrets, reaching the network; and output must stream line by line."""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from tools.verify.sandbox import child_env, network_namespace_prefix, run_sandboxed


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (zombies have an empty one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_until_gone(marker: str, seconds: float = 3.0) -> list[int]:
    """Processes are reaped asynchronously by their new parent; give the kernel a moment before judging."""
    deadline = time.monotonic() + seconds
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return processes_with(marker)


def script(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(source))
    return ["python", str(path)]


def sleeper(marker: str, *, leave_group: bool = False) -> str:
    """Python source that starts a grandchild sleeping for two minutes, tagged with `marker` on its command line."""
    setsid = "os.setsid(); " if leave_group else ""
    return (f'subprocess.Popen([sys.executable, "-c", "import os, time; {setsid}time.sleep(120)", "{marker}"])\n')


@pytest.fixture
def marker() -> str:
    tag = f"pg-sandbox-test-{uuid.uuid4().hex}"
    yield tag
    for pid in processes_with(tag):  # never leave a stray process behind, even when a test fails
        os.kill(pid, signal.SIGKILL)


def has_pid_namespace() -> bool:
    return "-p" in network_namespace_prefix()[0]


def test_exit_code_and_output_tail(tmp_path):
    argv = script(tmp_path, """
        import sys
        for i in range(50):
            print(f"line {i}")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """)
    result = run_sandboxed(argv, cwd=tmp_path, timeout_s=30, tail_lines=5)
    assert result.returncode == 3 and not result.timed_out
    assert result.output_tail.splitlines() == ["line 46", "line 47", "line 48", "line 49", "to stderr"]


def test_python_means_the_judges_interpreter(tmp_path):
    argv = script(tmp_path, "import sys; print(sys.executable)")
    assert run_sandboxed(argv, cwd=tmp_path, timeout_s=30).output_tail == sys.executable


def test_on_line_streams_each_line_while_the_child_runs(tmp_path):
    """The child prints a line, then waits for a file that only our on_line callback creates on seeing it: it
    finishes only if lines reach us while it is still running."""
    go = tmp_path / "go"
    argv = script(tmp_path, f"""
        import os, sys, time
        print("first", flush=True)
        deadline = time.monotonic() + 20
        while not os.path.exists({str(go)!r}):
            if time.monotonic() > deadline:
                sys.exit(9)
            time.sleep(0.02)
        print("second")
    """)
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "first":
            go.touch()

    result = run_sandboxed(argv, cwd=tmp_path, timeout_s=30, on_line=on_line)
    assert result.returncode == 0 and seen == ["first", "second"]


def test_a_failing_on_line_does_not_break_the_run(tmp_path):
    def on_line(line: str) -> None:
        raise RuntimeError("display broke")

    result = run_sandboxed(script(tmp_path, "print('a'); print('b')"), cwd=tmp_path, timeout_s=30, on_line=on_line)
    assert result.returncode == 0 and result.output_tail == "a\nb"


def test_environment_is_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("PG_TEST_SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    argv = script(tmp_path, """
        import os
        print(os.environ.get("PG_TEST_SECRET_TOKEN"), os.environ.get("AWS_SECRET_ACCESS_KEY"))
        print(os.environ["HOME"])
        print(os.environ.get("GIVEN"))
    """)
    result = run_sandboxed(argv, cwd=tmp_path, timeout_s=30, env={"GIVEN": "yes"})
    assert result.output_tail.splitlines() == ["None None", str(tmp_path), "yes"]
    assert "PG_TEST_SECRET_TOKEN" not in child_env()


def test_timeout_kills_the_whole_process_group_with_grandchildren(tmp_path, marker):
    argv = script(tmp_path, f"""
        import subprocess, sys, time
        {sleeper(marker)}
        print("started", flush=True)
        time.sleep(120)
    """)
    started = time.monotonic()
    result = run_sandboxed(argv, cwd=tmp_path, timeout_s=2, kill_grace_s=0.5)
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - started < 15
    assert "started" in result.output_tail
    assert wait_until_gone(marker) == []


def test_no_child_is_left_running_after_a_clean_exit(tmp_path, marker):
    argv = script(tmp_path, f"""
        import subprocess, sys
        {sleeper(marker)}
    """)
    result = run_sandboxed(argv, cwd=tmp_path, timeout_s=30, kill_grace_s=0.5)
    assert result.returncode == 0 and not result.timed_out
    assert wait_until_gone(marker) == []


def test_a_grandchild_that_leaves_the_process_group_still_dies(tmp_path, marker):
    """setsid() takes a process out of our process group, out of killpg's reach; only the PID namespace (which
    the kernel empties when its first process exits) still catches it."""
    if not has_pid_namespace():
        note = network_namespace_prefix()[1]
        pytest.skip(f"no PID namespace on this platform ({note})")
    argv = script(tmp_path, f"""
        import subprocess, sys, time
        {sleeper(marker, leave_group=True)}
        time.sleep(0.5)
    """)
    result = run_sandboxed(argv, cwd=tmp_path, timeout_s=30, kill_grace_s=0.5)
    assert result.returncode == 0
    assert wait_until_gone(marker) == []


def test_ctrl_c_in_the_judge_kills_the_child(tmp_path, marker):
    argv = script(tmp_path, f"""
        import subprocess, sys, time
        {sleeper(marker)}
        time.sleep(120)
    """)

    def interrupt_when_running() -> None:
        deadline = time.monotonic() + 20
        while not processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_sandboxed(argv, cwd=tmp_path, timeout_s=60, kill_grace_s=0.5)
    assert wait_until_gone(marker) == []


def test_network_namespace_blocks_a_connect(tmp_path):
    """A listening socket on the judge's loopback: reachable without the namespace (so the probe can fail),
    unreachable from inside it."""
    prefix, note = network_namespace_prefix()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        argv = script(tmp_path, f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
                print("connected")
            except OSError as problem:
                print("blocked", type(problem).__name__)
        """)
        open_result = run_sandboxed(argv, cwd=tmp_path, timeout_s=30, isolate_network=False)
        assert open_result.output_tail == "connected" and not open_result.network_isolated
        assert open_result.note == "network left on by request"
        if not prefix:
            assert note.startswith("network not isolated")
            pytest.skip(note)
        result = run_sandboxed(argv, cwd=tmp_path, timeout_s=30)
    assert result.network_isolated and note.startswith("network isolated with `unshare")
    assert result.output_tail.startswith("blocked")


def test_hidden_folders_are_empty_for_the_child(tmp_path):
    from tools.verify.sandbox import mount_namespace_available, network_namespace_prefix

    secret = tmp_path / "datasets"
    secret.mkdir()
    (secret / "train_000000.bin").write_bytes(b"judge's data")
    work = tmp_path / "work"
    work.mkdir()
    listing = "import os, sys; print(sorted(os.listdir(sys.argv[1])))"
    visible = run_sandboxed(["python", "-c", listing, str(secret)], cwd=work, timeout_s=30)
    assert "train_000000.bin" in visible.output_tail
    hidden = run_sandboxed(["python", "-c", listing, str(secret)], cwd=work, timeout_s=30, hide=[secret])
    if not (network_namespace_prefix()[0] and mount_namespace_available()):
        assert "not hidden" in hidden.note
        return
    assert hidden.returncode == 0 and hidden.output_tail.strip() == "[]"
    assert f"hidden from the child: {secret.resolve()}" in hidden.note
    assert (secret / "train_000000.bin").exists()  # hidden from the child only, never touched

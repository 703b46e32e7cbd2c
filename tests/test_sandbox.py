"""tools.verify.sandbox.run_sandboxed: the only way a record's code runs. Each promise is tried with a child that
tries to break it: outliving a timeout (with grandchildren, also ones that leave the process group), outliving a
clean exit, reading the parent's secrets, reaching the network, writing where it may not; output streams line by
line in bounded memory; and without bubblewrap nothing runs unless --unisolated says so. (The escapes an attacker
tried against the previous sandbox are in tests/test_sandbox_attacks.py.)

CI installs bubblewrap (Makefile, workflows): here a missing or broken bubblewrap FAILS, it never skips."""

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

from tests.fskit import remove_nested
from tools.verify import sandbox
from tools.verify.sandbox import (
    Limits,
    SandboxUnavailable,
    child_env,
    network_namespace_prefix,
    run_sandboxed,
    sandbox_available,
    unisolated_mode,
)
from tools.verify.sandbox import bwrap as sandbox_bwrap
from tools.verify.sandbox.output import MAX_LINE_CHARS, OutputTail


@pytest.fixture(autouse=True)
def bubblewrap_works():
    ok, why = sandbox_available()
    if not ok:
        pytest.fail(f"the sandbox must work here (CI installs bubblewrap): {why}")


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


@pytest.fixture
def work(tmp_path) -> Path:
    """A record's private copy: a folder of its own, as the judge's callers make one."""
    folder = tmp_path / "record"
    folder.mkdir()
    return folder


def script(folder: Path, source: str) -> list[str]:
    path = folder / "child.py"
    path.write_text(textwrap.dedent(source))
    return ["python", "child.py"]


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


# --- running, output -------------------------------------------------------------------------------------------------


def test_exit_code_and_output_tail(work):
    argv = script(work, """
        import sys
        for i in range(50):
            print(f"line {i}")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """)
    result = run_sandboxed(argv, cwd=work, timeout_s=30, tail_lines=5)
    assert result.returncode == 3 and not result.timed_out and result.isolation == "bubblewrap"
    assert result.output_tail.splitlines() == ["line 46", "line 47", "line 48", "line 49", "to stderr"]


def test_python_means_the_judges_interpreter(work):
    argv = script(work, "import sys; print(sys.executable)")
    assert run_sandboxed(argv, cwd=work, timeout_s=30).output_tail == sys.executable


def test_on_line_streams_each_line_while_the_child_runs(work, tmp_path):
    """The child prints a line, then waits for a file that only our on_line callback creates on seeing it (in an
    input folder: read-only for the child, live for both): it finishes only if lines reach us while it runs."""
    signals = tmp_path / "signals"
    signals.mkdir()
    go = signals / "go"
    argv = script(work, f"""
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

    result = run_sandboxed(argv, cwd=work, timeout_s=30, on_line=on_line, inputs=[signals])
    assert result.returncode == 0 and seen == ["first", "second"]


def test_a_failing_on_line_does_not_break_the_run(work):
    def on_line(line: str) -> None:
        raise RuntimeError("display broke")

    result = run_sandboxed(script(work, "print('a'); print('b')"), cwd=work, timeout_s=30, on_line=on_line)
    assert result.returncode == 0 and result.output_tail == "a\nb"


def test_output_tail_cuts_long_lines_and_splits_chunks():
    seen: list[str] = []
    tail = OutputTail(3, seen.append, max_line_chars=5)
    for chunk in (b"ab", b"c\nlong line", b" goes on\r\n", b"x\ny", b"z"):
        tail.feed(chunk)
    tail.close()
    assert seen == ["abc", "long  [...]", "x", "yz"]
    assert tail.text() == "long  [...]\nx\nyz" and tail.total == 27


def test_a_huge_line_without_newline_is_cut_and_the_child_killed_at_the_output_limit(work):
    argv = script(work, """
        import sys
        block = "x" * 65536
        while True:
            sys.stdout.write(block)
    """)
    result = run_sandboxed(argv, cwd=work, timeout_s=60, limits=Limits(output_bytes=8 * 1024**2))
    assert result.killed == "output" and result.returncode is None and not result.timed_out
    lines = result.output_tail.splitlines()
    assert len(lines[0]) <= MAX_LINE_CHARS + 10 and lines[0].endswith("[...]")
    assert lines[-1].startswith("[sandbox] killed: over the output limit")


def test_environment_is_scrubbed(work, monkeypatch):
    monkeypatch.setenv("PG_TEST_SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    argv = script(work, """
        import os
        print(os.environ.get("PG_TEST_SECRET_TOKEN"), os.environ.get("AWS_SECRET_ACCESS_KEY"))
        print(os.environ["HOME"])
        print(os.environ.get("GIVEN"))
    """)
    result = run_sandboxed(argv, cwd=work, timeout_s=30, env={"GIVEN": "yes"})
    assert result.output_tail.splitlines() == ["None None", "/tmp", "yes"]
    assert "PG_TEST_SECRET_TOKEN" not in child_env()


# --- killing ------------------------------------------------------------------------------------------------------


def test_timeout_kills_the_whole_process_group_with_grandchildren(work, marker):
    argv = script(work, f"""
        import subprocess, sys, time
        {sleeper(marker)}
        print("started", flush=True)
        time.sleep(120)
    """)
    started = time.monotonic()
    result = run_sandboxed(argv, cwd=work, timeout_s=2, kill_grace_s=0.5)
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - started < 15
    assert "started" in result.output_tail
    assert wait_until_gone(marker) == []


def test_no_child_is_left_running_after_a_clean_exit(work, marker):
    argv = script(work, f"""
        import subprocess, sys
        {sleeper(marker)}
    """)
    result = run_sandboxed(argv, cwd=work, timeout_s=30, kill_grace_s=0.5)
    assert result.returncode == 0 and not result.timed_out
    assert wait_until_gone(marker) == []


def test_a_grandchild_that_leaves_the_process_group_still_dies(work, marker):
    """setsid() takes a process out of our process group, out of killpg's reach; the sandbox's PID namespace
    (emptied by the kernel when its first process dies) still catches it."""
    argv = script(work, f"""
        import subprocess, sys, time
        {sleeper(marker, leave_group=True)}
        time.sleep(0.5)
    """)
    result = run_sandboxed(argv, cwd=work, timeout_s=30, kill_grace_s=0.5)
    assert result.returncode == 0
    assert wait_until_gone(marker) == []


def test_ctrl_c_in_the_judge_kills_the_child(work, marker):
    argv = script(work, f"""
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
        run_sandboxed(argv, cwd=work, timeout_s=60, kill_grace_s=0.5)
    assert wait_until_gone(marker) == []


# --- what the child sees ------------------------------------------------------------------------------------------


def test_network_namespace_blocks_a_connect(work):
    """A listening socket on the judge's loopback: reachable with the network left on (so the probe can fail),
    unreachable from the sandbox's own namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        argv = script(work, f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
                print("connected")
            except OSError as problem:
                print("blocked", type(problem).__name__)
        """)
        open_result = run_sandboxed(argv, cwd=work, timeout_s=30, isolate_network=False)
        assert open_result.output_tail == "connected" and not open_result.network_isolated
        assert open_result.note.startswith("network left on by request")
        result = run_sandboxed(argv, cwd=work, timeout_s=30)
    assert result.network_isolated and result.note == network_namespace_prefix()[1]
    assert result.note.startswith("network cut")
    assert result.output_tail.startswith("blocked")


def test_only_the_copy_and_the_inputs_are_visible_and_only_writable_folders_take_writes(work, tmp_path):
    secret = tmp_path / "datasets"
    secret.mkdir()
    (secret / "train_000000.bin").write_bytes(b"judge's data")
    given = tmp_path / "given"
    given.mkdir()
    (given / "tokens.npy").write_bytes(b"tokens")
    out = tmp_path / "out"
    out.mkdir()
    (work / "mine.txt").write_text("record")
    argv = script(work, f"""
        import os
        def attempt(what, action):
            try:
                action()
                print(what, "ok")
            except OSError as problem:
                print(what, type(problem).__name__)
        attempt("read copy", lambda: open("mine.txt").read())
        attempt("read input", lambda: open({str(given / "tokens.npy")!r}).read())
        attempt("read hidden", lambda: os.listdir({str(secret)!r}))
        attempt("write copy", lambda: open("new.txt", "w").write("x"))
        attempt("write input", lambda: open({str(given / "new.txt")!r}, "w").write("x"))
        attempt("write out", lambda: open({str(out / "result.npy")!r}, "w").write("x"))
        attempt("write tmp", lambda: open("/tmp/scratch", "w").write("x"))
        print("uid", os.getuid(), os.getgid())
    """)
    result = run_sandboxed(argv, cwd=work, timeout_s=30, inputs=[given], writable=[out])
    assert result.output_tail.splitlines() == [
        "read copy ok", "read input ok", "read hidden FileNotFoundError", "write copy OSError",
        "write input OSError", "write out ok", "write tmp ok", "uid 65534 65534"]
    assert (out / "result.npy").read_text() == "x"
    assert not (work / "new.txt").exists() and not (given / "new.txt").exists()


def test_the_disk_limit_kills_a_child_that_fills_its_writable_folder(work, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    argv = script(work, f"""
        import time
        for i in range(1000):
            with open({str(out)!r} + f"/part{{i}}", "wb") as f:
                f.write(b"x" * 4 * 1024**2)
            time.sleep(0.01)
    """)
    result = run_sandboxed(argv, cwd=work, timeout_s=60, writable=[out],
                           limits=Limits(disk_bytes=64 * 1024**2, file_bytes=8 * 1024**2))
    assert result.killed == "disk" and result.returncode is None
    assert "[sandbox] killed: over the disk limit" in result.output_tail


def test_a_deep_tree_in_the_writable_folder_does_not_break_the_judge(work, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    argv = script(work, f"""
        import os, time
        os.chdir({str(out)!r})
        for _ in range(3000):  # deeper than the judge's recursion limit and than PATH_MAX
            os.mkdir("d")
            os.chdir("d")
        time.sleep(30)
    """)
    result = run_sandboxed(argv, cwd=work, timeout_s=60, writable=[out])
    remove_nested(out, "d")
    assert result.killed == "disk" and result.wall_s < 30  # a tree the judge cannot measure counts as too big


def test_limits_are_applied_inside(work):
    argv = script(work, """
        import resource
        for name in ("RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_CPU"):
            print(name, resource.getrlimit(getattr(resource, name))[0])
    """)
    limits = Limits(memory_bytes=3 * 1024**3, max_processes=100, cpu_seconds=50, file_bytes=1024**2)
    lines = run_sandboxed(argv, cwd=work, timeout_s=30, limits=limits).output_tail.splitlines()
    nproc = int(lines.pop(1).split()[1])
    assert lines == [f"RLIMIT_AS {3 * 1024**3}", f"RLIMIT_FSIZE {1024**2}", "RLIMIT_CORE 0", "RLIMIT_CPU 50"]
    # As root the child is uid 65534 and gets exactly the limit; otherwise the judge user's own tasks on top.
    assert nproc == 100 if os.geteuid() == 0 else nproc >= 100


def test_a_niceness_lowers_the_childs_priority_and_only_lowers_it(work):
    argv = script(work, """
        import os
        print(os.nice(0))
        try:
            os.nice(-5)
            print("raised")
        except PermissionError:
            print("refused")
    """)
    here = os.nice(0)
    lines = run_sandboxed(argv, cwd=work, timeout_s=30, limits=Limits(niceness=10)).output_tail.splitlines()
    assert lines == [str(min(19, here + 10)), "refused"]
    assert run_sandboxed(argv, cwd=work, timeout_s=30).output_tail.splitlines()[0] == str(here)


# --- the command line bubblewrap gets ---------------------------------------------------------------------------


def test_the_bwrap_command_shows_nothing_unasked(tmp_path):
    view = sandbox_bwrap.View(read_only=(str(tmp_path / "record"), str(tmp_path / "data")),
                              writable=(str(tmp_path / "record" / "logs"),))
    launch = sandbox_bwrap.build("/usr/bin/bwrap", ["python", "x.py"], cwd=str(tmp_path / "record"), view=view,
                                 as_root=False)
    argv = list(launch.argv)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--uid") + 1] == "65534" and argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--share-net" not in argv
    sources = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]
    repo = str(Path(__file__).resolve().parent.parent)
    assert repo not in sources and "/etc" not in sources and "/etc/shadow" not in sources and "/root" not in sources
    assert "/work" not in sources and "/" not in sources
    assert argv.index(str(tmp_path / "record" / "logs")) > argv.index(str(tmp_path / "record"))  # rw over ro
    assert argv[-3:] == ["--", "python", "x.py"] and launch.drop_to is None and launch.staged == ()


def test_as_root_every_source_is_staged_and_the_child_drops_to_65534(tmp_path):
    view = sandbox_bwrap.View(read_only=(str(tmp_path),), writable=())
    launch = sandbox_bwrap.build("/usr/bin/bwrap", ["true"], cwd=str(tmp_path), view=view, as_root=True)
    assert launch.drop_to == (65534, 65534)
    assert str(tmp_path) in [source for source, _ in launch.staged]
    assert all(point.startswith(str(launch.stage_root)) for _, point in launch.staged)


def test_minimal_drops_nested_and_duplicate_paths():
    assert sandbox_bwrap.minimal(["/a/b", "/a", "/a/", "/c/d"], covered=["/c"]) == ("/a",)


# --- failing closed -------------------------------------------------------------------------------------------------


def test_without_bubblewrap_run_sandboxed_refuses(work, monkeypatch):
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    ok, why = sandbox_available()
    assert not ok and "not installed" in why and "\n" not in why
    with pytest.raises(SandboxUnavailable) as refused:
        run_sandboxed(script(work, "print('ran')"), cwd=work, timeout_s=30)
    assert refused.value.where == "sandbox" and "bubblewrap" in refused.value.message
    assert network_namespace_prefix() == ((), why)


def test_unisolated_runs_without_the_sandbox_and_says_so(work, monkeypatch):
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    argv = script(work, "import os; print(os.getuid())")
    with unisolated_mode(True):
        result = run_sandboxed(argv, cwd=work, timeout_s=30)
    assert result.returncode == 0 and result.output_tail == str(os.getuid())
    assert result.isolation == "unisolated" and not result.network_isolated
    assert result.note.startswith("UNISOLATED") and "not evidence" in result.note
    with pytest.raises(SandboxUnavailable):  # the mode ends with its block
        run_sandboxed(argv, cwd=work, timeout_s=30)


# --- installed everywhere record code runs --------------------------------------------------------------------------


def test_ci_and_the_workflows_that_run_record_code_install_the_sandbox():
    repo = Path(__file__).resolve().parent.parent
    makefile = (repo / "Makefile").read_text()
    assert "\ntest: $(VENV)/.installed sandbox " in makefile and "apt-get install -y -qq bubblewrap" in makefile
    assert "make test" in (repo / ".ci" / "run").read_text()
    for workflow in ("ci.yml", "pr-verify.yml", "reproduce.yml"):
        assert "make sandbox" in (repo / ".github" / "workflows" / workflow).read_text(), workflow

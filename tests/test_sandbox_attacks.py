"""The escapes an attacker achieved against the previous sandbox (unshare + a tmpfs over hidden folders, as root),
each tried again from inside run_sandboxed by a "spy" record script; every one must be blocked and the judge must
survive and report. See docs/THREATS.md for the table of threats and the test that covers each.

Reads and escapes run in one spy process that prints BLOCKED/REACHED per attempt; writes are judged on the host
(the file the spy aimed at is unchanged); resource attacks (fork bomb, 8 GB allocation, 5 GB file, endless line)
run one per child under the limits the judge uses. These tests FAIL, never skip, without bubblewrap: CI installs it.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import socket
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from tools.verify import sandbox
from tools.verify.sandbox import DEFAULT_LIMITS, Limits, run_sandboxed, sandbox_available

REPO = Path(__file__).resolve().parent.parent
SECRET = f"pg-judge-secret-{uuid.uuid4().hex}"

SPY = r'''
import ctypes, os, socket, sys

judge, repo, port, datasets, judge_tree = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWNS, MNT_DETACH = 0x40000000, 0x10000000, 0x00020000, 2


def report(name, action):
    try:
        got = action()
    except Exception as problem:
        print(f"BLOCKED {name}: {type(problem).__name__}: {problem}"[:300], flush=True)
    else:
        print(f"REACHED {name}: {str(got)[:200]!r}", flush=True)


def read(path):
    with open(path, "rb") as f:
        return f.read(4096)


def call(result):
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return "succeeded"


def listing(path):
    names = set(os.listdir(path)) - {".venv"}  # the interpreter's venv is shown at its own path, read-only
    if not names:
        raise FileNotFoundError("nothing but the venv's mount point")
    return sorted(names)


def write(path):
    with open(path, "a") as f:
        f.write("spy was here")
    return path


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    return call(libc.setns(fd, CLONE_NEWNET))


def capabilities():
    for line in open("/proc/self/status"):
        if line.startswith("CapEff:") and int(line.split()[1], 16) == 0:
            raise PermissionError("no effective capabilities")
    return "has capabilities"


def root():
    if os.getuid() == 0 or os.geteuid() == 0:
        return "uid 0"
    raise PermissionError(f"uid {os.getuid()}")


def environments():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                print(f"ENVIRON {entry} {read(f'/proc/{entry}/environ')!r}", flush=True)
            except OSError:
                pass


environments()
report("runs as root", root)
report("has capabilities", capabilities)
report("read /etc/shadow", lambda: read("/etc/shadow"))
report("read the judge's repository", lambda: read(os.path.join(repo, "README.md")))
report("list the judge's repository", lambda: listing(repo))
report("list the records", lambda: listing(os.path.join(repo, "records")))
report("read /proc/<judge>/environ", lambda: read(f"/proc/{judge}/environ"))
report("read the repository via /proc/<judge>/root", lambda: read(f"/proc/{judge}/root{repo}/README.md"))
report("read /etc/shadow via /proc/1/root", lambda: read("/proc/1/root/etc/shadow"))
report("list the datasets", lambda: os.listdir(datasets))
report("list the datasets via /proc/<judge>/root", lambda: os.listdir(f"/proc/{judge}/root{datasets}"))
report("umount2 /", lambda: call(libc.umount2(b"/", MNT_DETACH)))
report("umount2 its own copy", lambda: call(libc.umount2(os.getcwd().encode(), MNT_DETACH)))
report("mount a tmpfs", lambda: call(libc.mount(b"none", b"/usr", b"tmpfs", 0, None)))
report("unshare a mount namespace", lambda: call(libc.unshare(CLONE_NEWNS)))
report("unshare a user namespace", lambda: call(libc.unshare(CLONE_NEWUSER)))
report("write leaderboard.md", lambda: write(os.path.join(repo, "leaderboard.md")))
report("write into the repository", lambda: write(os.path.join(repo, "spy.txt")))
report("write into another record", lambda: write(os.path.join(judge_tree, "records", "other", "train_gpt.py")))
report("write the judge's leaderboard", lambda: write(os.path.join(judge_tree, "leaderboard.md")))
report("write its own copy", lambda: write("train_gpt.py"))
report("connect to the judge's loopback", lambda: socket.create_connection(("127.0.0.1", port), timeout=3))
report("setns into /proc/<judge>/ns/net", lambda: setns(f"/proc/{judge}/ns/net"))
report("setns into /proc/1/ns/net", lambda: setns("/proc/1/ns/net") and socket.create_connection(("127.0.0.1", port), timeout=3))
report("signal the judge", lambda: os.kill(judge, 0))
report("become root", lambda: os.setuid(0))
'''


@pytest.fixture(autouse=True)
def bubblewrap_works():
    ok, why = sandbox_available()
    if not ok:
        pytest.fail(f"the sandbox must work here (CI installs bubblewrap): {why}")


@pytest.fixture
def copy(tmp_path) -> Path:
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "train_gpt.py").write_text("print('the record')\n")
    return folder


def write_child(folder: Path, source: str) -> list[str]:
    (folder / "child.py").write_text(textwrap.dedent(source))
    return ["python", "child.py"]


def fingerprint(*paths: Path) -> dict[str, str | None]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths}


def live(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_every_escape_of_the_spy_is_blocked(copy, tmp_path, monkeypatch):
    monkeypatch.setenv("PG_JUDGE_TOKEN", SECRET)  # in the judge's environment, as a CI secret would be
    judge_tree = tmp_path / "judge"  # a second judge-side tree: a record and a leaderboard the spy must not touch
    (judge_tree / "records" / "other").mkdir(parents=True)
    (judge_tree / "records" / "other" / "train_gpt.py").write_text("honest\n")
    (judge_tree / "leaderboard.md").write_text("| board |\n")
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "train_000000.bin").write_bytes(b"the judge's data")
    watched = [REPO / "leaderboard.md", REPO / "spy.txt", judge_tree / "records" / "other" / "train_gpt.py",
               judge_tree / "leaderboard.md", copy / "train_gpt.py"]
    before = fingerprint(*watched)
    (copy / "spy.py").write_text(SPY)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        argv = ["python", "spy.py", str(os.getpid()), str(REPO), str(port), str(datasets), str(judge_tree)]
        result = run_sandboxed(argv, cwd=copy, timeout_s=60, tail_lines=200)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected to the judge's loopback
    assert result.returncode == 0, result.output_tail
    lines = result.output_tail.splitlines()
    verdicts = [line for line in lines if line.startswith(("BLOCKED", "REACHED"))]
    assert len(verdicts) == 26, result.output_tail
    # The child's /tmp is its own capped tmpfs: when the judge's tree itself lies under /tmp (a CI clone), a write to
    # its path lands in that private tmpfs, never in the judge's file (the fingerprints below prove it).
    private = REPO.resolve().is_relative_to("/tmp")
    reached = [line for line in verdicts if line.startswith("REACHED")
               and not (private and line.startswith("REACHED write") and f"'{REPO}" in line)]
    assert reached == []
    assert SECRET not in result.output_tail
    assert any(line.startswith("ENVIRON 1 ") for line in lines)  # the spy could read environments: its own only
    assert fingerprint(*watched) == before
    assert result.network_isolated and result.isolation == "bubblewrap"


def test_a_fork_bomb_stops_at_the_process_limit_and_dies_with_the_run(copy):
    marker = f"pg-fork-bomb-{uuid.uuid4().hex}"
    argv = write_child(copy, """
        import os, sys, time
        forked = 0
        try:
            for _ in range(10_000):
                if os.fork() == 0:
                    time.sleep(120)
                    os._exit(0)
                forked += 1
        except OSError as problem:
            print(f"BLOCKED fork after {forked}: {problem}", flush=True)
        else:
            print(f"REACHED {forked} processes", flush=True)
    """) + [marker]
    try:
        result = run_sandboxed(argv, cwd=copy, timeout_s=120, kill_grace_s=0.5)
        assert result.output_tail.startswith("BLOCKED fork after"), result.output_tail
        limit = sandbox.process_limit(DEFAULT_LIMITS, as_root=os.geteuid() == 0)  # 512 as root
        assert int(result.output_tail.split()[3].rstrip(":")) < limit
        deadline = time.monotonic() + 10
        while live(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live(marker) == []
    finally:
        for pid in live(marker):
            os.kill(pid, signal.SIGKILL)


def test_allocating_8_gb_fails_inside_and_the_judge_carries_on(copy):
    argv = write_child(copy, """
        import mmap
        for what, allocate in (("bytearray", lambda: bytearray(8 * 10**9)),
                               ("mmap", lambda: mmap.mmap(-1, 8 * 10**9))):
            try:
                allocate()
                print("REACHED", what)
            except (MemoryError, OSError) as problem:
                print("BLOCKED", what, type(problem).__name__)
    """)
    result = run_sandboxed(argv, cwd=copy, timeout_s=60)
    assert result.output_tail.splitlines() == ["BLOCKED bytearray MemoryError", "BLOCKED mmap OSError"]
    assert "memory 4 GiB/process (RLIMIT_AS)" in result.limits


def test_a_5_gb_file_stops_at_the_file_limit_and_filling_the_disk_gets_the_child_killed(copy, tmp_path):
    """With the scorer's kind of limits scaled down so the test writes megabytes, not gigabytes."""
    out = tmp_path / "out"
    out.mkdir()
    argv = write_child(copy, f"""
        import os
        block = b"x" * 1024**2
        for place in ({str(out / "big.bin")!r}, "/tmp/big.bin"):
            written = 0
            try:
                with open(place, "wb") as f:
                    while written < 5 * 1024**3:
                        f.write(block)
                        f.flush()
                        written += len(block)
                print("REACHED", place, written, flush=True)
            except OSError as problem:
                print("BLOCKED", place, "at", written // 1024**2, "MiB:", problem.strerror, flush=True)
            if place.startswith("/tmp"):
                os.remove(place)
        for i in range(5 * 1024):  # 5 GB in files under the size limit: only the disk limit stops this
            with open({str(out)!r} + f"/part{{i}}.bin", "wb") as f:
                for _ in range(8):
                    f.write(block)
    """)
    limits = Limits(file_bytes=16 * 1024**2, disk_bytes=96 * 1024**2, tmp_bytes=8 * 1024**2)
    result = run_sandboxed(argv, cwd=copy, timeout_s=120, writable=[out], limits=limits)
    lines = result.output_tail.splitlines()
    assert lines[0] == f"BLOCKED {out / 'big.bin'} at 16 MiB: File too large", result.output_tail
    assert lines[1].startswith("BLOCKED /tmp/big.bin at") and "No space left on device" in lines[1]
    assert result.killed == "disk" and result.returncode is None
    # Measured every 0.1 s: it overshoots by what the child writes meanwhile, far from 5 GB.
    assert sandbox.disk_usage([str(out)]) < 1024**3


def test_an_endless_line_is_read_in_bounded_memory_and_stopped(copy):
    argv = write_child(copy, """
        import os
        block = b"y" * 1024**2
        while True:
            os.write(1, block)
    """)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_sandboxed(argv, cwd=copy, timeout_s=120)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.killed == "output" and not result.timed_out
    assert len(result.output_tail) < 10_000
    assert grown_mib < 32, f"the judge grew by {grown_mib:.0f} MiB reading {DEFAULT_LIMITS.output_bytes} bytes"


# --- failing closed: the commands -----------------------------------------------------------------------------------


def cli(name: str):
    from importlib import import_module

    return import_module(f"tools.verify.commands.{name}").command


@pytest.mark.parametrize("name,args", [
    ("probes", ["records/track_cpu_shakespeare/x"]),
    ("reproduce", ["records/track_cpu_shakespeare/x"]),
    ("tokenizer", ["records/track_cpu_shakespeare/x"]),
    ("all", ["records/track_cpu_shakespeare/x"]),
])
def test_without_bubblewrap_each_command_exits_2_with_one_line(monkeypatch, name, args):
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    result = CliRunner().invoke(cli(name), args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: sandbox: bubblewrap is not installed")


def test_unisolated_is_never_evidence(monkeypatch):
    result = CliRunner().invoke(cli("all"), ["records/track_cpu_shakespeare/x", "--unisolated", "--write-evidence"])
    assert result.exit_code == 2
    assert result.stderr == "error: --unisolated: an unisolated verdict is never evidence; drop --write-evidence\n"


def test_with_unisolated_probes_run_and_say_so(tmp_path, monkeypatch):
    import json

    from tests.test_probes_kit import make_scorer_record, make_tree

    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    root, dataset = make_tree(tmp_path, monkeypatch)
    folder = make_scorer_record(root, dataset, "honest")
    result = CliRunner().invoke(cli("probes"), [str(folder), "--unisolated", "--no-rescore", "--rng-seed", "0",
                                                "-q", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: --unisolated: the record's code runs WITHOUT the sandbox")
    checks = json.loads(result.stdout)["checks"]
    notes = [seed["sandbox"] for c in checks for seed in c["evidence"]["seeds"].values()]
    assert len(notes) == 3 and all(note.startswith("UNISOLATED (--unisolated)") for note in notes)


def test_with_unisolated_reproduce_runs_and_says_so(tmp_path, monkeypatch):
    from tests.recordkit import make_repo_tree, repo_env
    from tests.test_reproduce import TINY_TRACKS, fake_trainer, record_with

    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    root = make_repo_tree(tmp_path, tracks_toml=TINY_TRACKS)
    for key, value in repo_env(root).items():
        monkeypatch.setenv(key, value)
    folder = record_with(root, fake_trainer())
    result = CliRunner().invoke(cli("reproduce"), [str(folder), "--n", "1", "--no-track", "--margin", "10", "-q",
                                                   "--unisolated"])
    assert result.exit_code == 0, result.output
    assert "warning: --unisolated" in result.stderr
    assert "sandbox: UNISOLATED (--unisolated)" in result.stdout


def test_with_unisolated_the_tokenizer_audit_goes_past_the_sandbox_check(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    result = CliRunner().invoke(cli("tokenizer"), [str(tmp_path / "no_such_record"), "--unisolated"])
    assert result.exit_code == 2
    assert result.stderr.startswith("warning: --unisolated")
    assert "error: sandbox" not in result.stderr

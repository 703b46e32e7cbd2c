"""Run a record's untrusted code in a child that cannot reach anything the judge did not hand it.

The judge never imports a record's code: a hostile script could patch the very functions that judge it. Every
run goes through `run_sandboxed`, which starts the child under bubblewrap (tools.verify.sandbox.bwrap: an
unprivileged uid, no capabilities, new user/PID/network/IPC/UTS/mount/cgroup namespaces, a fresh /proc, only the
record's private copy, the interpreter and the exact inputs visible, read-only, plus the folders it must write and
a size-capped /tmp), with resource limits on top (`Limits`), and reads its output in bounded chunks.

It fails closed: when bubblewrap is missing or cannot set up a sandbox on this machine, `run_sandboxed` raises
SandboxUnavailable (a RecordError, so every `verify` command exits 2 with `error: sandbox: <why>`), unless the
caller opted out with `unisolated=True` or inside `unisolated_mode(True)` (the CLIs' --unisolated). An
unisolated run says so in `isolation` and `note`, and its verdict is never evidence.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.records.model import RecordError
from tools.verify.sandbox import bwrap as sandbox_bwrap
from tools.verify.sandbox.limits import DEFAULT_LIMITS, Limits, disk_usage, process_limit, set_limits
from tools.verify.sandbox.output import CHUNK_BYTES, OutputTail

BWRAP = "bwrap"  # the program, looked up on PATH (tests point it at a missing one)
BUBBLEWRAP, UNISOLATED = "bubblewrap", "unisolated"
INSTALL_HINT = "install it (apt-get install -y bubblewrap) or pass --unisolated (never evidence)"
# Variables a child may inherit; everything else (tokens, credentials, CI secrets) is dropped.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
_KILL_GRACE_S = 5.0
_DISK_CHECK_S = 0.1  # how often the writable folders are measured: the overshoot is what the child writes meanwhile

_unisolated = contextvars.ContextVar("pg_sandbox_unisolated", default=False)


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None  # None when killed before it exited by itself
    timed_out: bool
    wall_s: float
    output_tail: str  # last lines of stdout+stderr
    network_isolated: bool
    note: str  # how it was isolated (the same text for every run with the same isolation)
    isolation: str = BUBBLEWRAP  # "bubblewrap" or "unisolated": what was actually applied
    killed: str = ""  # a limit the judge killed it for besides the time limit: "output" or "disk"
    limits: str = ""  # Limits.describe() of this run


class SandboxUnavailable(RecordError):
    """bubblewrap cannot run a sandboxed child here: the judge refuses rather than run record code unconfined."""

    def __init__(self, why: str):
        super().__init__("sandbox", why)


def isolation_note(isolate_network: bool) -> str:
    network = "network cut (own namespace, loopback only)" if isolate_network else "network left on by request"
    return (f"{network}; bubblewrap: uid {sandbox_bwrap.SANDBOX_UID}, no capabilities, own user/pid/ipc/uts/mount "
            f"namespaces and /proc, only the record's copy and its inputs visible")


def unisolated_note() -> str:
    return (f"UNISOLATED (--unisolated): record code ran as uid {os.geteuid()} without namespaces; "
            f"this verdict is not evidence")


@contextlib.contextmanager
def unisolated_mode(enabled: bool) -> Iterator[None]:
    """Within this block, run_sandboxed runs children without the sandbox when `enabled` (the CLIs' flag)."""
    token = _unisolated.set(enabled)
    try:
        yield
    finally:
        _unisolated.reset(token)


def unisolated_requested() -> bool:
    return _unisolated.get()


UNISOLATED_FLAG_HELP = ("Run the record's code WITHOUT the sandbox (when bubblewrap cannot run here). Loud in the "
                       "report; the verdict is never evidence.")
UNISOLATED_WARNING = ("warning: --unisolated: the record's code runs WITHOUT the sandbox, as this user, seeing this "
                      "machine's files and network; this verdict is not evidence")


def cli_refusal(unisolated: bool) -> str | None:
    """The one line a command prints before it exits 2 instead of running record code unconfined; None: go on."""
    if unisolated:
        return None
    ok, why = sandbox_available()
    return None if ok else f"error: sandbox: {why}"


def sandbox_available() -> tuple[bool, str]:
    """(True, "") when bubblewrap can run a sandboxed child here, else (False, one sentence saying why)."""
    return _probe(shutil.which(BWRAP) or BWRAP)


@functools.lru_cache(maxsize=8)
def _probe(bwrap: str) -> tuple[bool, str]:
    if not (os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)):
        return False, f"bubblewrap is not installed (no `{BWRAP}` found); {INSTALL_HINT}"
    check = ("import os, sys; sys.exit(0 if os.getuid() == 65534 and not os.path.exists('/etc/shadow') "
             "and not os.path.exists('/proc/1/root/etc/shadow') else 3)")
    launch = sandbox_bwrap.build(bwrap, [sys.executable, "-S", "-c", check], cwd="/", view=sandbox_bwrap.View((), ()))
    try:
        sandbox_bwrap.prepare()
        probe = subprocess.run(launch.argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                               preexec_fn=functools.partial(sandbox_bwrap.stage_and_drop, launch), env=child_env())
    except (OSError, subprocess.SubprocessError) as problem:
        return False, f"bubblewrap could not be started: {problem}"
    if probe.returncode != 0:
        said = (probe.stderr.decode(errors="replace").strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
        hint = ""
        if "namespace" in said.lower() or "permission" in said.lower() or "uid map" in said.lower():
            hint = (" (unprivileged user namespaces are off: on Ubuntu 24.04, sysctl -w "
                    "kernel.apparmor_restrict_unprivileged_userns=0)")
        return False, f"bubblewrap cannot set up a sandbox here: {said[:300]}{hint}; or pass --unisolated"
    return True, ""


def network_namespace_prefix() -> tuple[tuple[str, ...], str]:
    """Kept for callers of the previous sandbox: (non-empty when the network is cut, the note runs report)."""
    ok, why = sandbox_available()
    return ((BWRAP, "--unshare-all"), isolation_note(True)) if ok else ((), why)


def child_env(extra: Mapping[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["MALLOC_ARENA_MAX"] = "2"  # glibc's per-thread arenas would eat RLIMIT_AS as address space, not memory
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra or {})
    return env


def _kill_group(proc: subprocess.Popen, grace_s: float = _KILL_GRACE_S) -> None:
    # Under bubblewrap the group is bwrap itself: its death takes the sandbox's PID namespace with it
    # (--die-with-parent), so every process the record started dies, setsid() or not.
    pgid = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 0)
        while time.monotonic() < deadline:
            proc.poll()  # reap our own child, or its zombie keeps the group alive
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _launch(argv: list[str], cwd: Path, env: dict[str, str], limits: Limits, cpu_seconds: int, *,
            isolated: bool, view: sandbox_bwrap.View | None) -> subprocess.Popen:
    nproc = process_limit(limits, as_root=isolated and os.geteuid() == 0)
    if isolated:
        assert view is not None
        if os.geteuid() == 0:  # the child's uid must be able to enter its copy and write its outputs
            os.chmod(cwd, os.stat(cwd).st_mode | 0o055)
            for folder in view.writable:
                os.chown(folder, sandbox_bwrap.SANDBOX_UID, sandbox_bwrap.SANDBOX_GID)
        launch = sandbox_bwrap.build(shutil.which(BWRAP) or BWRAP, argv, cwd=str(cwd), view=view)
        sandbox_bwrap.prepare()

        def before_exec() -> None:
            set_limits(limits, cpu_seconds, nproc)
            sandbox_bwrap.stage_and_drop(launch)

        command, workdir = list(launch.argv), "/"
    else:
        def before_exec() -> None:
            set_limits(limits, cpu_seconds, nproc)

        command, workdir = argv, str(cwd)
    return subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=before_exec)


def run_sandboxed(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    isolate_network: bool = True,
    tail_lines: int = 40,
    kill_grace_s: float = _KILL_GRACE_S,
    inputs: Sequence[Path] = (),
    writable: Sequence[Path] = (),
    limits: Limits = DEFAULT_LIMITS,
    gpu: bool = False,
    unisolated: bool | None = None,
) -> SandboxResult:
    """Run `argv` in `cwd` (the record's private copy, read-only) under bubblewrap and `limits`; stream each output
    line to `on_line`; kill the child on timeout or over a limit; raise only SandboxUnavailable (fail closed).

    `argv[0]` may be "python" to mean this interpreter (the judge's own environment has torch and friends).
    `inputs`: files or folders the child reads (read-only); `writable`: existing folders it writes (inside `cwd`
    allowed). `gpu`: show the GPU device nodes (and lift RLIMIT_AS, which CUDA cannot live with).
    `unisolated`: run without the sandbox (default: whatever unisolated_mode says); reported, never evidence.
    `kill_grace_s`: how long the sandbox (bwrap) gets between SIGTERM and SIGKILL.
    """
    argv = [sys.executable if a == "python" and i == 0 else a for i, a in enumerate(argv)]
    unisolated = unisolated_requested() if unisolated is None else unisolated
    devices = sandbox_bwrap.gpu_devices() if gpu else ()
    if devices:
        limits = dataclasses.replace(limits, memory_bytes=None)
    cpu_seconds = limits.cpu_seconds or int(math.ceil(timeout_s * (os.cpu_count() or 1))) + 5
    writable_dirs = [str(Path(w)) for w in writable]
    view = None
    if unisolated:
        isolation, note, home = UNISOLATED, unisolated_note(), cwd
    else:
        ok, why = sandbox_available()
        if not ok:
            raise SandboxUnavailable(why)
        missing = [str(p) for p in (cwd, *inputs, *writable) if not os.path.exists(p)]
        if missing:
            raise ValueError(f"run_sandboxed: no such input or folder: {', '.join(missing)}")
        view = sandbox_bwrap.View(read_only=(str(cwd), *map(str, inputs)), writable=tuple(writable_dirs),
                                  devices=devices, tmp_bytes=limits.tmp_bytes, share_net=not isolate_network)
        isolation, note, home = BUBBLEWRAP, isolation_note(isolate_network), Path(sandbox_bwrap.SANDBOX_HOME)
    tail = OutputTail(tail_lines, on_line)
    start = time.monotonic()
    # Inside the sandbox the judge's TMPDIR does not exist: the private tmpfs, unless the caller gives one.
    extra = dict(env or {}) if unisolated else {"TMPDIR": "/tmp", **(env or {})}
    proc = _launch(argv, Path(cwd), child_env(extra, home=home), limits, cpu_seconds, isolated=not unisolated,
                   view=view)
    timed_out, killed = False, ""
    try:
        timed_out, killed = _watch(proc, tail, start + timeout_s, limits, writable_dirs)
    finally:
        _kill_group(proc, kill_grace_s)  # also reaps grandchildren left behind by a clean exit
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        tail.close()
    if killed:
        tail.lines.append(f"[sandbox] killed: over the {killed} limit ({limits.describe()})")
    return SandboxResult(
        returncode=None if timed_out or killed else proc.returncode,
        timed_out=timed_out,
        wall_s=time.monotonic() - start,
        output_tail=tail.text(),
        network_isolated=not unisolated and isolate_network,
        note=note,
        isolation=isolation,
        killed=killed,
        limits=limits.describe(),
    )


def _watch(proc: subprocess.Popen, tail: OutputTail, deadline: float, limits: Limits,
           writable: Sequence[str]) -> tuple[bool, str]:
    """Pump output until the child closes it and exits, the deadline passes, or a limit is crossed."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    open_output, next_disk_check = True, time.monotonic() + _DISK_CHECK_S
    while True:
        now = time.monotonic()
        if now >= deadline:
            return True, ""
        if now >= next_disk_check and writable:
            if disk_usage(writable) > limits.disk_bytes:
                return False, "disk"
            spent = time.monotonic() - now  # a child with many files must not make the judge spend its time here
            next_disk_check = now + max(_DISK_CHECK_S, 20 * spent)
        wait_s = min(deadline - now, _DISK_CHECK_S)
        if not open_output:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait_s)
            if proc.returncode is not None:
                return False, ""
            continue
        if poller.poll(wait_s * 1000):
            chunk = os.read(fd, CHUNK_BYTES)
            if not chunk:
                open_output = False
                continue
            tail.feed(chunk)
            if tail.total > limits.output_bytes:
                return False, "output"

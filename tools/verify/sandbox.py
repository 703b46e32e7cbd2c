"""Run a record's untrusted code in a limited child process.

The judge never imports a record's code: a hostile script could patch the very functions that judge it. Every
run goes through `run_sandboxed`: its own process group (so the whole tree is killed on timeout or on exit),
a hard wall-clock limit, a scrubbed environment, core dumps off, an output-file size cap, and no network where
the platform allows a private network namespace (`unshare -n`). The result says whether the network was
actually cut, so reports can state it honestly.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Variables a child may inherit; everything else (tokens, credentials, CI secrets) is dropped.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
_MAX_FILE_BYTES = 2 * 1024**3  # a runaway child cannot fill the disk with one file
_KILL_GRACE_S = 5.0
_PID_FLAGS = ("-p", "-f", "--kill-child")  # own PID namespace; see network_namespace_prefix


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None  # None when killed before it exited by itself
    timed_out: bool
    wall_s: float
    output_tail: str  # last lines of stdout+stderr
    network_isolated: bool
    note: str  # how it was isolated, or why not


# Runs first inside the child's private mount namespace: lays an empty read-only tmpfs over each hidden folder,
# then becomes the record's command. Uses only the standard library and /usr/bin/mount.
_HIDE_THEN_EXEC = (
    "import os, subprocess, sys\n"
    "cut = sys.argv.index('--')\n"
    "for folder in sys.argv[1:cut]:\n"
    "    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=4k,mode=0555', 'tmpfs', folder], check=True)\n"
    "os.execvp(sys.argv[cut + 1], sys.argv[cut + 1:])\n"
)


@functools.lru_cache(maxsize=1)
def mount_namespace_available() -> bool:
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        return False
    probe = subprocess.run([unshare, "-m", mount, "-t", "tmpfs", "tmpfs", "/mnt"], capture_output=True, timeout=10)
    return probe.returncode == 0


def hiding_prefix(prefix: tuple[str, ...], hide: Sequence[Path]) -> tuple[list[str], list[str], str]:
    """(command prefix, wrapper argv, note) that hide `hide` from the child, or leave them visible and say so."""
    existing = [str(Path(p).resolve()) for p in hide if Path(p).is_dir()]
    if not existing:
        return list(prefix), [], ""
    if not prefix or not mount_namespace_available():
        return list(prefix), [], "; folders not hidden: this platform refuses mount namespaces"
    wrapper = [sys.executable, "-I", "-c", _HIDE_THEN_EXEC, *existing, "--"]
    return [prefix[0], "-m", *prefix[1:]], wrapper, f"; hidden from the child: {', '.join(existing)}"


@functools.lru_cache(maxsize=1)
def network_namespace_prefix() -> tuple[tuple[str, ...], str]:
    """The command prefix that puts a child in an empty network namespace, and a note saying what happened."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return (), "network not isolated: `unshare` is not installed"
    # A private PID namespace as well where allowed: a grandchild that calls setsid() leaves our process group
    # (killpg cannot reach it), but it cannot leave the namespace, which the kernel empties when its first
    # process exits; --kill-child ties that process to `unshare` itself, which killpg does reach.
    for flags in (("-n", *_PID_FLAGS), ("-r", "-n", *_PID_FLAGS), ("-n",), ("-r", "-n")):
        probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10)
        if probe.returncode == 0:
            return (unshare, *flags), f"network isolated with `unshare {' '.join(flags)}`"
    return (), "network not isolated: this platform refuses network namespaces (unshare -n failed)"


def child_env(extra: Mapping[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra or {})
    return env


def _limit_child() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_FILE_BYTES, _MAX_FILE_BYTES))


def _kill_group(proc: subprocess.Popen, grace_s: float = _KILL_GRACE_S) -> None:
    # Under a PID namespace the first process of the command is the namespace's init, which the kernel shields
    # from every signal it has no handler for except SIGKILL: a plain python child then dies at the SIGKILL,
    # `grace_s` after the SIGTERM (that the rest of the group does receive).
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
    hide: Sequence[Path] = (),
) -> SandboxResult:
    """Run `argv` in `cwd` under the limits above; stream each output line to `on_line`; never raise on failure.

    `argv[0]` may be "python" to mean this interpreter (the judge's own environment has torch and friends).
    `kill_grace_s`: how long a timed-out (or interrupted) run gets between SIGTERM and SIGKILL.
    `hide`: folders the child must not read (e.g. the judge's datasets while a scorer runs), covered by an
    empty read-only tmpfs in a private mount namespace where the platform allows one (the note says).
    """
    argv = [sys.executable if a == "python" and i == 0 else a for i, a in enumerate(argv)]
    prefix, note = network_namespace_prefix() if isolate_network else ((), "network left on by request")
    full_prefix, wrapper, hide_note = hiding_prefix(prefix, hide)
    note += hide_note
    tail: deque[str] = deque(maxlen=tail_lines)
    start = time.monotonic()
    proc = subprocess.Popen(
        [*full_prefix, *wrapper, *argv],
        cwd=cwd,
        env=child_env(env, home=cwd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: killpg reaches every descendant
        preexec_fn=_limit_child,
        text=True,
        errors="replace",
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if on_line is not None:
                try:
                    on_line(line)
                except Exception:  # a progress display must never break the run it displays
                    pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(proc, kill_grace_s)  # also reaps grandchildren left behind by a clean exit
        proc.wait()
        reader.join(timeout=5)
    return SandboxResult(
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        wall_s=time.monotonic() - start,
        output_tail="\n".join(tail),
        network_isolated=bool(prefix),
        note=note,
    )

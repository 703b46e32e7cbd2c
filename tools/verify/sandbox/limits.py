"""What a sandboxed child may use, and how the judge enforces and measures it (tools.verify.sandbox)."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_MAX_DISK_ENTRIES = 100_000  # more files than this in the writable folders is itself over the limit


@dataclass(frozen=True)
class Limits:
    """Resource limits for one child, and how each is enforced.

    memory_bytes: RLIMIT_AS per process (None: off; CUDA needs a huge address space). Per process, not per tree:
                  together with max_processes it bounds the tree. No cgroup is used: CI runners do not delegate one.
    max_processes: RLIMIT_NPROC of the child's uid (threads count too; see process_limit).
    cpu_seconds:  RLIMIT_CPU per process (None: the wall-clock limit times the CPU count, a backstop).
    file_bytes:   RLIMIT_FSIZE, the largest file the child can write.
    disk_bytes:   everything under the writable folders, measured by the judge while the child runs (killed over).
    tmp_bytes:    the size of the private tmpfs /tmp (and of /dev/shm).
    output_bytes: stdout + stderr in total (killed over); lines are cut at 4096 characters in any case.
    niceness:     added to the child's scheduling niceness (0: as the judge). A server that runs children beside
                  its own request handling (the run service) gives them 10, so its answers do not wait on them.
    """

    memory_bytes: int | None = 4 * 1024**3
    max_processes: int = 512
    cpu_seconds: int | None = None
    file_bytes: int = 2 * 1024**3
    disk_bytes: int = 4 * 1024**3
    tmp_bytes: int = 256 * 1024**2
    output_bytes: int = 64 * 1024**2
    niceness: int = 0

    def describe(self) -> str:
        memory = "not limited" if self.memory_bytes is None else f"{_size(self.memory_bytes)}/process (RLIMIT_AS)"
        return (f"memory {memory}, {self.max_processes} processes (RLIMIT_NPROC), file {_size(self.file_bytes)} "
                f"(RLIMIT_FSIZE), writable disk {_size(self.disk_bytes)}, /tmp {_size(self.tmp_bytes)}, output "
                f"{_size(self.output_bytes)}, no core dumps" + (f", nice +{self.niceness}" if self.niceness else ""))


DEFAULT_LIMITS = Limits()


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


def tasks_of(uid: int) -> int:
    """Processes and threads of `uid` on this machine (RLIMIT_NPROC counts them all, not only the child's)."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{entry}/status").read_text().splitlines())
                if int(fields["Uid"].split()[0]) == uid:
                    total += int(fields["Threads"])
    return total


def process_limit(limits: Limits, *, as_root: bool) -> int:
    """RLIMIT_NPROC for the child. As root the child runs as uid 65534, which nothing else uses; otherwise it shares
    the judge's uid, whose existing tasks count against the limit too, so the child gets them on top."""
    return limits.max_processes if as_root else limits.max_processes + tasks_of(os.getuid())


def set_limits(limits: Limits, cpu_seconds: int, nproc: int) -> None:  # in the child, between fork and exec
    def cap(kind: int, value: int) -> None:
        hard = resource.getrlimit(kind)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_FSIZE, limits.file_bytes)
    cap(resource.RLIMIT_CPU, cpu_seconds)
    cap(resource.RLIMIT_NPROC, nproc)
    if limits.memory_bytes is not None:
        cap(resource.RLIMIT_AS, limits.memory_bytes)
    if limits.niceness > 0:  # only ever lower the priority: raising it needs privileges the child must not use
        os.nice(limits.niceness)


def disk_usage(folders: Sequence[str]) -> int:
    """Bytes allocated under `folders` (sparse files count what they use). Iterative: the child controls the depth.
    More than _MAX_DISK_ENTRIES entries, or a folder the judge cannot read (the child shares the judge's uid when
    the judge is not root, and may chmod its own folders), counts as over any limit."""
    total, entries, pending = 0, 0, list(folders)
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entries > _MAX_DISK_ENTRIES:
                        return sys.maxsize
                    with contextlib.suppress(FileNotFoundError):
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
        except FileNotFoundError:
            continue
        except OSError:
            return sys.maxsize
    return total

"""The order records entered the repository: the first commit that added a file under each record folder.

Records dated the same day are judged in this order, never by their names (a byte-identical copy of a record
under a later-sorting name must not become SOTA by sorting after it). A record not yet committed (the pull
request's own) comes after every committed one. Outside a git checkout (a snapshot's records tree) the order is
unknown and callers fall back to names, saying so where it matters.

Read with `git log -z --name-only`, so no file name (newlines included) can break the parse.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

UNKNOWN = float("inf")  # not committed: after everything that is


def entry_order(records_root: Path) -> dict[tuple[str, str], int]:
    """(track, record folder name) -> the index of the commit that first added a file under it (0 = oldest)."""
    root = Path(records_root).resolve()
    top = _toplevel(root)
    if top is None:
        return {}
    head = _git(top, "rev-parse", "--verify", "-q", "HEAD")
    if head is None:
        return {}
    return dict(_order_at(top, head.strip(), root.relative_to(top).as_posix()))


def _toplevel(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    out = _git(folder, "rev-parse", "--show-toplevel")
    return Path(out.strip()).resolve() if out else None


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=16)
def _order_at(top: Path, head: str, records: str) -> tuple[tuple[tuple[str, str], int], ...]:
    """Cached per commit: history does not change under a fixed HEAD."""
    out = _git(top, "log", "-z", "--reverse", "--diff-filter=A", "--format=%x01%H", "--name-only", head, "--",
               records if records != "." else ":/")
    if out is None:
        return ()
    order: dict[tuple[str, str], int] = {}
    commit = -1
    prefix = "" if records == "." else records.rstrip("/") + "/"
    for field in out.split("\0"):
        if field.startswith("\x01"):  # "\x01<sha>": the next commit; its names follow, the first after a "\n"
            commit += 1
            continue
        field = field[1:] if field.startswith("\n") else field
        if not field.startswith(prefix):
            continue
        parts = field[len(prefix):].split("/")
        if len(parts) >= 3:  # <track>/<record>/<file...>
            order.setdefault((parts[0], parts[1]), commit)
    return tuple(order.items())

"""Where the repository's folders are: the records, the track table, the prepared datasets.

Environment variables override the defaults so tests and CI can point the tools at a scratch copy:
`PG_REPO_ROOT` (the repository) and `PG_DATASETS_ROOT` (the prepared datasets).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_MARKER = Path("records") / "tracks.toml"


def repo_root() -> Path:
    """The repository root: `$PG_REPO_ROOT`, else the nearest folder at or above the working directory holding
    `records/tracks.toml`, else the folder above the `tools` package (an installed checkout run from elsewhere)."""
    override = os.environ.get("PG_REPO_ROOT")
    if override:
        return Path(override).expanduser().resolve()
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the working directory was deleted under us
        cwd = None
    for folder in (cwd, *cwd.parents) if cwd else ():
        if (folder / _MARKER).is_file():
            return folder
    return Path(__file__).resolve().parents[2]


def records_root() -> Path:
    """`<repo>/records`: one folder per track, one folder per record inside it."""
    return repo_root() / "records"


def tracks_path() -> Path:
    """`<repo>/records/tracks.toml`: the rules each track is judged by."""
    return records_root() / "tracks.toml"


def datasets_root() -> Path:
    """`$PG_DATASETS_ROOT`, else `<repo>/data/datasets` (one folder per prepared dataset)."""
    override = os.environ.get("PG_DATASETS_ROOT")
    if override:
        return Path(override).expanduser().resolve()
    return repo_root() / "data" / "datasets"


def read_regular_file(path: str | Path, max_bytes: int, *, follow_symlinks: bool = True) -> tuple[bytes, bool]:
    """Read at most `max_bytes` of a regular file; returns (data, truncated).

    Records are hostile: with follow_symlinks=False a symlink is refused at open time (O_NOFOLLOW, so it cannot be
    swapped in between a check and the read), and a FIFO or device is refused instead of blocking or streaming
    forever. Raises OSError (ELOOP for a refused symlink) or ValueError for something that is not a regular file.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    descriptor = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ValueError("not a regular file")
        chunks: list[bytes] = []
        remaining = max_bytes + 1  # one byte more tells us whether the file was longer than the cap
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    return data[:max_bytes], len(data) > max_bytes

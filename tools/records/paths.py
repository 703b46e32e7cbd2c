"""Where the repository's folders are: the records, the track table, the prepared datasets.

Environment variables override the defaults so tests and CI can point the tools at a scratch copy:
`PG_REPO_ROOT` (the repository) and `PG_DATASETS_ROOT` (the prepared datasets).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
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


def write_atomic(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temporary file in the same folder and os.replace: readers see the old bytes or the new, never a
    half-written file (the one atomic writer of the project's outputs)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def file_sha256(path: str | Path, *, follow_symlinks: bool = False) -> str:
    """sha256 of a file's bytes (hashlib.file_digest); by default never through a symlink (O_NOFOLLOW)."""
    flags = os.O_RDONLY | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(os.open(path, flags), "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


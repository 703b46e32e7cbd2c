"""On-disk formats of a dataset folder (docs/CONTRACTS.md section 1): shards, manifest, hashing.

Pure functions with no knowledge of where the data came from; tools may copy them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_WORDS = 256
HEADER_BYTES = HEADER_WORDS * 4
TOKEN_DTYPE = np.dtype("<u2")
MAX_TOKEN_ID = np.iinfo(np.uint16).max
DEFAULT_SHARD_TOKENS = 100_000_000

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1


class DataError(Exception):
    """A problem with input data or a dataset file. The message is meant for the user as is."""


class ShardFormatError(DataError, ValueError):
    """A shard file whose header or length does not follow the contract."""


def write_shard(path: str | Path, tokens) -> None:
    """Write `tokens` as one shard: 256 int32 header words (magic, version, count, zeros), then uint16 tokens."""
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ValueError(f"a shard holds a 1-D token array, got shape {array.shape}")
    if array.dtype != TOKEN_DTYPE:
        if array.size and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > MAX_TOKEN_ID):
            raise ValueError(f"shard tokens must be integers in 0..{MAX_TOKEN_ID}")
        array = array.astype(TOKEN_DTYPE)
    header = np.zeros(HEADER_WORDS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, array.size)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(array.tobytes())


def _validated_count(path: Path, handle: BinaryIO) -> int:
    """Check the header and length of the shard open in `handle` (positioned at 0); return its token count and
    leave `handle` at the first token."""
    size = os.fstat(handle.fileno()).st_size
    raw = handle.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        raise ShardFormatError(f"{path}: too short for a shard header ({size} bytes < {HEADER_BYTES})")
    header = np.frombuffer(raw, dtype="<i4")
    if header[0] != SHARD_MAGIC:
        raise ShardFormatError(f"{path}: bad magic {int(header[0])} (expected {SHARD_MAGIC}); not a shard")
    if header[1] != SHARD_VERSION:
        raise ShardFormatError(f"{path}: unsupported shard version {int(header[1])} (expected {SHARD_VERSION})")
    count = int(header[2])
    if count < 0:
        raise ShardFormatError(f"{path}: header says {count} tokens, a negative count; not a shard")
    expected = HEADER_BYTES + count * TOKEN_DTYPE.itemsize
    if size != expected:
        raise ShardFormatError(f"{path}: header says {count} tokens ({expected} bytes) but the file has {size} bytes")
    return count


@contextlib.contextmanager
def _open_shard(path: Path) -> Iterator[BinaryIO]:
    """Open a shard for reading; anything but a readable regular file is a ShardFormatError naming `path`. The file
    is opened non-blocking and checked before any read, so a FIFO or device fails at once instead of hanging."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ShardFormatError(f"{path}: cannot read shard: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ShardFormatError(f"{path}: cannot read shard: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            yield handle
        except OSError as e:
            raise ShardFormatError(f"{path}: cannot read shard: {e.strerror or e}") from None


def read_shard_header(path: str | Path) -> int:
    """Validate a shard's header and file length; return its token count."""
    path = Path(path)
    with _open_shard(path) as handle:
        return _validated_count(path, handle)


def read_shard(path: str | Path) -> np.ndarray:
    """Read one shard's tokens as a uint16 array, after validating magic, version and length.

    The one shard reader: every malformed case (unreadable or not a regular file, too short, bad magic, bad version,
    negative count, length not matching the count) raises ShardFormatError (a DataError and a ValueError) whose
    message starts with the path."""
    path = Path(path)
    with _open_shard(path) as handle:
        count = _validated_count(path, handle)
        tokens = np.fromfile(handle, dtype=TOKEN_DTYPE, count=count)
    if tokens.size != count:  # the file shrank between the check and the read
        raise ShardFormatError(f"{path}: header says {count} tokens but only {tokens.size} could be read")
    return tokens


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def canonical_json(obj) -> bytes:
    """Deterministic JSON: sorted keys, fixed separators, trailing newline (same object, same bytes)."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def fingerprint(obj) -> str:
    """sha256 of an object's canonical JSON; identifies a build's inputs and settings."""
    return sha256_bytes(canonical_json(obj))


def write_manifest(folder: str | Path, manifest: dict) -> None:
    Path(folder, MANIFEST_NAME).write_bytes(canonical_json(manifest))


def load_manifest(folder: str | Path) -> dict:
    """Read a dataset folder's manifest.json; a folder without one is not a dataset."""
    path = Path(folder, MANIFEST_NAME)
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataError(
            f"{path}: no manifest; {Path(folder)} is not a prepared dataset (run data/prepare.py)"
        ) from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise DataError(
            f"{path}: unsupported manifest schema {manifest.get('schema') if isinstance(manifest, dict) else None!r}"
        )
    return manifest

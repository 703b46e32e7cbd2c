"""On-disk formats of a dataset folder (docs/CONTRACTS.md section 1): shards, manifest, hashing.

Pure functions with no knowledge of where the data came from; tools may copy them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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


def read_shard_header(path: str | Path) -> int:
    """Validate a shard's header and file length; return its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise ShardFormatError(f"{path}: cannot read shard: {e.strerror or e}") from None
    if len(raw) < HEADER_BYTES:
        raise ShardFormatError(f"{path}: too short for a shard header ({size} bytes < {HEADER_BYTES})")
    header = np.frombuffer(raw, dtype="<i4")
    if header[0] != SHARD_MAGIC:
        raise ShardFormatError(f"{path}: bad magic {int(header[0])} (expected {SHARD_MAGIC}); not a shard")
    if header[1] != SHARD_VERSION:
        raise ShardFormatError(f"{path}: unsupported shard version {int(header[1])} (expected {SHARD_VERSION})")
    count = int(header[2])
    expected = HEADER_BYTES + count * TOKEN_DTYPE.itemsize
    if count < 0 or size != expected:
        raise ShardFormatError(f"{path}: header says {count} tokens ({expected} bytes) but the file has {size} bytes")
    return count


def read_shard(path: str | Path) -> np.ndarray:
    """Read one shard's tokens as a uint16 array, after validating magic, version and length."""
    count = read_shard_header(path)
    return np.fromfile(path, dtype=TOKEN_DTYPE, count=count, offset=HEADER_BYTES)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


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

"""Train/validation leakage check: how many 50-byte windows of validation text also occur in training text.

Each window ("shingle") is reduced to a 64-bit polynomial hash, computed for all windows of a document at once
with numpy; collisions between distinct 50-byte windows are negligible at 2**-64 per pair.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

SHINGLE_BYTES = 50
DEFAULT_THRESHOLD = 0.01
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd, so multiplication mod 2**64 loses no information


def shingle_hashes(data: bytes, width: int = SHINGLE_BYTES) -> np.ndarray:
    """uint64 hash of every `width`-byte window of `data` (none if data is shorter)."""
    count = len(data) - width + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    values = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(width):  # Horner's rule over all windows at once; uint64 arithmetic wraps mod 2**64
        hashes *= _MULTIPLIER
        hashes += values[offset : offset + count]
    return hashes


def _is_member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Membership by binary search (np.isin/np.unique take seconds for millions of uint64 in numpy 2.4)."""
    if sorted_set.size == 0:
        return np.zeros(values.shape, dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[positions] == values


def overlap_report(
    train_texts: Iterable[bytes],
    val_texts: Iterable[bytes],
    threshold: float = DEFAULT_THRESHOLD,
    width: int = SHINGLE_BYTES,
) -> dict:
    """The manifest's "overlap" entry. Windows never span two documents."""
    empty = [np.zeros(0, dtype=np.uint64)]
    train_sorted = np.sort(np.concatenate([shingle_hashes(text, width) for text in train_texts] + empty))
    val_hashes = np.concatenate([shingle_hashes(text, width) for text in val_texts] + empty)
    in_train = int(np.count_nonzero(_is_member(val_hashes, train_sorted)))
    fraction = in_train / val_hashes.size if val_hashes.size else 0.0
    return {
        "shingle_bytes": width,
        "val_shingles": int(val_hashes.size),
        "val_shingles_in_train": in_train,
        "fraction": fraction,
        "threshold": threshold,
        "ok": fraction <= threshold,
    }

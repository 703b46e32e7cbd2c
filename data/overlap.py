"""Train/validation leakage check: how many 50-byte windows of validation text also occur in training text.

Each window ("shingle") is reduced to a 64-bit polynomial hash, computed for all windows of a document at once
with numpy; collisions between distinct 50-byte windows are negligible at 2**-64 per pair.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

SHINGLE_BYTES = 50
DEFAULT_THRESHOLD = 0.01
# One validation document mostly present in training is a leak even when it is a small part of the whole set.
DOCUMENT_THRESHOLD = 0.5
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
    """The manifest's "overlap" entry. Windows never span two documents.

    Fails above `threshold` of all validation shingles, or when any one validation document has more than
    DOCUMENT_THRESHOLD of its shingles in training (a whole document copied into train)."""
    empty = np.zeros(0, dtype=np.uint64)
    train_sorted = np.sort(np.concatenate([shingle_hashes(text, width) for text in train_texts] + [empty]))
    per_document = [_is_member(shingle_hashes(text, width), train_sorted) for text in val_texts]
    val_shingles = sum(hits.size for hits in per_document)
    in_train = sum(int(np.count_nonzero(hits)) for hits in per_document)
    fraction = in_train / val_shingles if val_shingles else 0.0
    document_fractions = [float(hits.mean()) if hits.size else 0.0 for hits in per_document]
    worst = int(np.argmax(document_fractions)) if document_fractions else None
    worst_fraction = document_fractions[worst] if worst is not None else 0.0
    return {
        "shingle_bytes": width,
        "val_shingles": int(val_shingles),
        "val_shingles_in_train": in_train,
        "fraction": fraction,
        "threshold": threshold,
        "worst_document_index": worst,
        "worst_document_fraction": worst_fraction,
        "document_threshold": DOCUMENT_THRESHOLD,
        "ok": fraction <= threshold and worst_fraction <= DOCUMENT_THRESHOLD,
    }

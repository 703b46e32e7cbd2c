"""Arithmetic on a scorer's log-probabilities, in float64, block by block (pure; no I/O, no scorer).

Used by the probes (tools.verify.probes): normalization (`logsumexp`, `check_normalization`), comparisons of a
probe with its original (`drift`), the score (`gold_logprob_sum`, `bits_per_byte`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CAUSALITY_RTOL = 1e-5  # allowed change of a log-probability that must not move, relative to its value...
CAUSALITY_ATOL = 1e-5  # ...plus this floor (nats), for values near 0 and float32 rounding of the logits
BLOCK_BYTES = 32 * 1024**2  # float64 working set when reducing a scorer's output

def logsumexp(logprobs: np.ndarray) -> np.ndarray:
    """logsumexp over the last axis in float64; -inf for a position whose every entry is -inf."""
    values = np.array(logprobs, dtype=np.float64)  # one float64 copy, then worked on in place
    shift = values.max(axis=-1, keepdims=True)
    shift[~np.isfinite(shift)] = 0.0
    values -= shift
    np.exp(values, out=values)
    with np.errstate(divide="ignore"):
        return np.log(values.sum(axis=-1)) + shift[..., 0]


def drift(reference: np.ndarray, candidate: np.ndarray, rtol: float = CAUSALITY_RTOL,
          atol: float = CAUSALITY_ATOL) -> tuple[float, float, tuple[int, ...]]:
    """How far `candidate` moved from `reference`, as (worst |change| / allowed change, that |change|, its index).

    Allowed change: rtol * |reference| + atol. Equal values (both -inf included) count 0; a finite value that
    became -inf (or back) counts infinity. A ratio above 1 means the values moved.
    """
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.size == 0:
        return 0.0, 0.0, ()
    with np.errstate(invalid="ignore"):
        change = np.where(a == b, 0.0, np.abs(a - b))
    allowed = rtol * np.where(np.isfinite(b), np.abs(b), 0.0) + atol
    ratio = change / allowed
    index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return float(ratio[index]), float(change[index]), tuple(int(i) for i in index)


@dataclass
class Worst:
    """The largest value seen so far, where it was, and how many values were looked at."""

    value: float = 0.0
    where: str = ""
    count: int = 0

    def consider(self, value: float, where: Callable[[], str], count: int = 1) -> None:
        self.count += count
        if value > self.value or (math.isnan(value) and not math.isnan(self.value)):
            self.value, self.where = value, where()


def check_normalization(logprobs: np.ndarray, tally: Worst, label: Callable[[int, int], str],
                        row_offset: int = 0) -> None:
    """Fold |logsumexp| of every position of `logprobs` [B, T, V] into `tally`, block by block (bounded memory).
    `label(row, position)` names a position for the report."""
    if len(logprobs) == 0:
        return
    rows_per_block = max(1, BLOCK_BYTES // max(1, logprobs[0].size * 8))
    for start in range(0, len(logprobs), rows_per_block):
        total = logsumexp(logprobs[start : start + rows_per_block])
        deviation = np.abs(total)
        row, position = (int(i) for i in np.unravel_index(int(np.argmax(deviation)), deviation.shape))
        signed = float(total[row, position])

        def where(r=row, p=position, s=start, value=signed) -> str:
            mass = f", total probability {math.exp(value):.4g}" if value < 700 else ""
            return f"{label(row_offset + s + r, p)} (logsumexp {value:+.4g}{mass})"

        tally.consider(float(deviation[row, position]), where, count=deviation.size)


def gold_logprob_sum(logprobs: np.ndarray, targets: np.ndarray, lengths: np.ndarray,
                     firsts: np.ndarray | None = None) -> tuple[float, int]:
    """(sum of the gold tokens' log-probabilities over the scored positions [first, length) of each row, in
    float64; how many were -inf)."""
    gold = np.take_along_axis(np.asarray(logprobs), targets[..., None], axis=-1)[..., 0].astype(np.float64)
    positions = np.arange(targets.shape[1])[None, :]
    scored = positions < lengths[:, None]
    if firsts is not None:
        scored &= positions >= firsts[:, None]
    values = gold[scored]
    return float(values.sum()), int(np.isneginf(values).sum())


def bits_per_byte(total_nats: float, val_bytes: int) -> float:
    return total_nats / math.log(2) / val_bytes

"""A record's per-token byte table, read as hostile data, and compared with the judge's truth.

A table is the script's claim of how many bytes of text each token id stands for (`train_gpt.py byte-table`,
docs/CONTRACTS.md section 4). Summed over the scored validation targets it is the record's bpb denominator.
The comparison says how far that sum is from the true byte count and *why*: each known bug class of the public
competition (docs/FAILURES.md C1-C3) leaves a recognizable per-id pattern of differences.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.verify.tokenizer.byte_truth import BYTE, MAX_VOCAB_SIZE, NORMAL, SPECIAL_KINDS, StreamStats, TokenizerTruth

MAX_BYTES_PER_TOKEN = 1 << 16  # no real piece is this long; larger values are garbage, not a claim
MAX_TABLE_FILE_BYTES = 8 * MAX_VOCAB_SIZE + 4096  # int64 [V] plus the .npy header
MAX_FLAGS_FILE_BYTES = 64 * 1024
FLAG_KEY = "leading_space_after_bos_is_free"
MAX_EXAMPLES = 5


class TableError(ValueError):
    """A byte table that is not the contract's int64 [V] array of non-negative counts (message names the file)."""


@dataclass(frozen=True)
class ByteTable:
    values: np.ndarray  # int64 [V]
    leading_space_after_bos_is_free: bool | None  # None: not stated, counted as False
    source: str  # who built it, for the report


def _read_regular(path: Path, cap: int) -> bytes:
    """Read a file a record's code wrote: no symlinks (O_NOFOLLOW), no FIFOs, at most `cap` bytes."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as e:
        raise TableError(f"{path}: cannot open: {e.strerror or e} (symlinks are refused)") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise TableError(f"{path}: not a regular file")
        if info.st_size > cap:
            raise TableError(f"{path}: {info.st_size:,} bytes is more than the {cap:,}-byte limit")
        with os.fdopen(os.dup(descriptor), "rb") as f:
            return f.read(cap + 1)[:cap]
    finally:
        os.close(descriptor)


def validate_table(values: Any, vocab_size: int, where: str) -> np.ndarray:
    """Return the table as int64 [V] or raise TableError saying what is wrong with it."""
    if not isinstance(values, np.ndarray):
        raise TableError(f"{where}: not a numpy array")
    if values.dtype.kind not in "iu":
        raise TableError(f"{where}: dtype {values.dtype}, expected int64 byte counts")
    if values.shape != (vocab_size,):
        raise TableError(f"{where}: shape {values.shape}, expected ({vocab_size},) for a {vocab_size}-id tokenizer")
    if values.size and (values.min() < 0 or values.max() > MAX_BYTES_PER_TOKEN):
        bad = int(np.flatnonzero((values < 0) | (values > MAX_BYTES_PER_TOKEN))[0])
        raise TableError(f"{where}: id {bad} has {int(values[bad])} bytes, outside 0..{MAX_BYTES_PER_TOKEN}")
    return values.astype(np.int64)


def load_byte_table(npy_path: str | Path, vocab_size: int, source: str | None = None) -> ByteTable:
    """Read OUT.npy (never unpickled) and its optional sibling OUT.json `{"leading_space_after_bos_is_free": b}`."""
    import io

    npy_path = Path(npy_path)
    raw = _read_regular(npy_path, MAX_TABLE_FILE_BYTES)
    try:
        values = np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as e:  # numpy raises ValueError, EOFError, OSError... for malformed files
        raise TableError(f"{npy_path}: not a readable .npy array: {str(e).strip() or type(e).__name__}") from None
    table = validate_table(values, vocab_size, str(npy_path))
    flag = None
    flags_path = npy_path.with_suffix(".json")
    if os.path.lexists(flags_path):
        try:
            flags = json.loads(_read_regular(flags_path, MAX_FLAGS_FILE_BYTES))
        except ValueError as e:
            raise TableError(f"{flags_path}: not valid JSON: {e}") from None
        if not isinstance(flags, dict) or not isinstance(flags.get(FLAG_KEY, False), bool):
            raise TableError(f'{flags_path}: expected {{"{FLAG_KEY}": true|false}}')
        flag = flags.get(FLAG_KEY)
    return ByteTable(values=table, leading_space_after_bos_is_free=flag, source=source or str(npy_path))


# --- comparison ----------------------------------------------------------------------------------------------

# id, title; the order is the order of the report.
BUG_CLASSES = {
    "leading_space_double": "leading-space byte counted twice: pieces starting with ▁ counted +1 (docs/FAILURES.md C3)",
    "space_mark_as_utf8": "▁ counted as its 3 UTF-8 bytes instead of one space, e.g. in ▁▁▁▁ pieces (docs/FAILURES.md C1)",
    "space_as_byte_tokens": "no standalone ▁ piece: each lone space is <0xE2><0x96><0x81>, 3 bytes counted for 1 (docs/FAILURES.md C1)",
    "byte_as_replacement_char": "byte token counted as 3 bytes, the UTF-8 of U+FFFD (docs/FAILURES.md C2)",
    "partial_utf8": "piece that is not valid UTF-8 on its own (part of a multi-byte character) miscounted",
    "characters_counted": "characters counted instead of UTF-8 bytes",
    "special_counted": "control/unknown token counted as bytes of text",
    "dummy_prefix_counted": "the dummy ▁ the tokenizer adds at each document start counted as a byte",
    "leading_space_wrongly_free": "leading space after BOS counted free, but this tokenizer adds no dummy prefix",
    "lossy_decoding": "the tokens do not decode to the original text (lossy tokenizer or transformed text)",
    "other": "other per-token differences",
}


@dataclass(frozen=True)
class BugClassFinding:
    id: str
    title: str
    token_ids: int  # vocabulary ids affected
    targets: int  # scored validation targets affected
    byte_error: int  # bytes this class adds to the record's count (negative: removes)
    examples: tuple[str, ...] = ()  # "id 17 '▁the': 5 counted, 4 true"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "token_ids": self.token_ids,
            "targets": self.targets,
            "byte_error": self.byte_error,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class TableComparison:
    source: str
    table_bytes: int  # the record's denominator over the scored targets
    true_bytes: int  # bytes of the original validation documents
    judge_bytes: int  # bytes the judge decodes the same targets to (== true_bytes when lossless)
    wrong_ids: int  # ids whose count differs from the judge's per-token truth
    leading_space_after_bos_is_free: bool | None
    classes: tuple[BugClassFinding, ...]

    @property
    def error_bytes(self) -> int:
        return self.table_bytes - self.true_bytes

    @property
    def error_fraction(self) -> float:
        return self.error_bytes / self.true_bytes if self.true_bytes else math.nan

    def bpb_effect(self, claimed_bpb: float | None, record_bytes: int | None = None) -> dict[str, float]:
        """bpb = nats / (ln 2 * bytes): the same losses over the true byte count scale by record/true.

        Without a claimed score, `relative` is the factor every bpb computed with this table is off by.
        """
        denominator = self.table_bytes if record_bytes is None else record_bytes
        if not self.true_bytes:
            return {}
        scale = denominator / self.true_bytes
        effect: dict[str, float] = {"relative": scale - 1.0}
        if claimed_bpb is not None:
            effect.update(claimed_bpb=claimed_bpb, true_bpb=claimed_bpb * scale, bpb_difference=claimed_bpb * (scale - 1))
        return effect

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "table_bytes": self.table_bytes,
            "true_bytes": self.true_bytes,
            "judge_bytes": self.judge_bytes,
            "error_bytes": self.error_bytes,
            "error_percent": 100 * self.error_fraction,
            "wrong_ids": self.wrong_ids,
            FLAG_KEY: self.leading_space_after_bos_is_free,
            "classes": [c.to_json() for c in self.classes],
        }


def _examples(truth: TokenizerTruth, table: np.ndarray, mask: np.ndarray, counts: np.ndarray) -> tuple[str, ...]:
    ids = np.flatnonzero(mask)
    ids = ids[np.argsort(-counts[ids], kind="stable")][:MAX_EXAMPLES]  # the most frequent first
    return tuple(
        f"id {i} {truth.pieces[i]!r}: {int(table[i])} counted, {int(truth.byte_counts[i])} true" for i in ids
    )


def compare_table(truth: TokenizerTruth, stats: StreamStats, table: ByteTable) -> TableComparison:
    """Sum the table over the scored targets, compare with the truth, and attribute the difference to classes.

    Decomposition (exact): record - true = sum over ids of count * (table - truth)     [per-id classes]
                                          + 2 * byte-encoded spaces                  [space_as_byte_tokens]
                                          + dummy-prefix drops - ids the flag frees  [dummy prefix classes]
                                          + (judge-decoded bytes - original bytes)   [lossy_decoding]
    """
    values = validate_table(table.values, truth.vocab_size, table.source)
    counts = stats.target_counts
    true_counts = truth.byte_counts
    leading = truth.leading_space
    freed = int(stats.first_token_counts[leading].sum()) if table.leading_space_after_bos_is_free else 0
    table_bytes = int(counts @ values) - freed
    judge_from_counts = int(counts @ true_counts) - 2 * stats.space_triples - stats.dummy_prefix_drops
    if judge_from_counts != stats.decoded_bytes:  # the judge's two ways of counting must agree
        raise AssertionError(f"judge byte count {judge_from_counts} != decoded {stats.decoded_bytes}")

    delta = values - true_counts
    wrong = delta != 0
    kinds = truth.kinds
    special = np.isin(kinds, SPECIAL_KINDS)
    partial = ~truth.valid_utf8_alone
    m_special = wrong & special
    m_fffd = wrong & ((kinds == BYTE) | partial) & (values == 3)
    m_partial = wrong & partial & ~m_fffd
    # ▁ miscounts: +1 for a doubled leading space and +2 per ▁ counted as 3 bytes; split delta = a + 2b.
    marks = truth.space_marks
    odd, pairs = delta % 2, delta // 2
    m_space = wrong & (kinds == NORMAL) & (marks > 0) & (delta > 0) & (pairs <= marks) & ((odd == 0) | leading)
    m_space &= ~partial
    chars = np.array([len(b.decode("utf-8")) if ok else -1 for b, ok in zip(truth.piece_bytes, truth.valid_utf8_alone, strict=True)])
    m_chars = wrong & (kinds == NORMAL) & (values == chars) & ~m_space
    m_other = wrong & ~(m_special | m_fffd | m_partial | m_space | m_chars)

    findings: list[BugClassFinding] = []

    def add(class_id: str, token_ids: int, targets: int, byte_error: int, examples: tuple[str, ...] = ()) -> None:
        if token_ids or targets or byte_error:
            findings.append(BugClassFinding(class_id, BUG_CLASSES[class_id], token_ids, targets, byte_error, examples))

    def add_mask(class_id: str, mask: np.ndarray, per_id_error: np.ndarray) -> None:
        add(
            class_id,
            int(mask.sum()),
            int(counts[mask].sum()),
            int(counts[mask] @ per_id_error[mask]),
            _examples(truth, values, mask, counts),
        )

    add_mask("leading_space_double", m_space & (odd == 1), odd)
    add_mask("space_mark_as_utf8", m_space & (pairs > 0), 2 * pairs)
    if stats.space_triples:
        add("space_as_byte_tokens", 3, 3 * stats.space_triples, 2 * stats.space_triples)
    add_mask("byte_as_replacement_char", m_fffd, delta)
    add_mask("partial_utf8", m_partial, delta)
    add_mask("characters_counted", m_chars, delta)
    add_mask("special_counted", m_special, delta)
    prefix_error = stats.dummy_prefix_drops - freed
    if truth.add_dummy_prefix and prefix_error:
        add("dummy_prefix_counted", int(np.count_nonzero(stats.first_token_counts[leading])), stats.dummy_prefix_drops, prefix_error)
    elif prefix_error:
        add("leading_space_wrongly_free", int(np.count_nonzero(stats.first_token_counts[leading])), freed, prefix_error)
    lossy = stats.decoded_bytes - stats.original_bytes
    if lossy or stats.mismatched_documents:
        add("lossy_decoding", 0, 0, lossy)
    add_mask("other", m_other, delta)
    order = list(BUG_CLASSES)
    findings.sort(key=lambda f: order.index(f.id))
    return TableComparison(
        source=table.source,
        table_bytes=table_bytes,
        true_bytes=stats.original_bytes,
        judge_bytes=stats.decoded_bytes,
        wrong_ids=int(wrong.sum()),
        leading_space_after_bos_is_free=table.leading_space_after_bos_is_free,
        classes=tuple(findings),
    )


def contract_table(truth: TokenizerTruth, source: str = "judge") -> ByteTable:
    """The contract's per-token rule applied by the judge itself (what a correct script's table must equal)."""
    return ByteTable(values=truth.byte_counts.copy(), leading_space_after_bos_is_free=truth.add_dummy_prefix, source=source)

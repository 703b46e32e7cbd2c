"""A record's shipped byte-accounting table (`*.meta.npz`), read as hostile data, and the public rule that sums it.

Public records that bring their own tokenizer ship three arrays beside it, and their evaluation counts each
scored target y, after the token x before it, as

    base_bytes[y] + (has_leading_space[y] and not is_boundary_token[x])

so a table is a per-id count (base_bytes + has_leading_space) plus one context rule: a leading space is free
after a boundary token. The competition's baseline builds the arrays from a SentencePiece model
(`baseline_rule`); `judge_rule` is the table the judge would ship for a vocabulary. Pure functions here; the
audit that compares a table with the truth lives in tools.verify.tokenizer.shipped.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tools.records import paths
from tools.verify.tokenizer.byte_table import MAX_BYTES_PER_TOKEN, TableError
from tools.verify.tokenizer.byte_truth import BYTE, MAX_VOCAB_SIZE, NORMAL, SPACE_MARK, SPECIAL_KINDS, TokenizerTruth

META_SUFFIX = ".meta.npz"
FORMAT_VERSION = 1  # the public loader refuses any other
MAX_META_FILE_BYTES = 16 * 1024**2
MAX_MEMBERS = 16
MAX_MEMBER_BYTES = 8 * MAX_VOCAB_SIZE + 4096  # an int64 [V] array and its header
MAX_TEXT_CHARS = 4096
ARRAY_FIELDS = ("base_bytes", "has_leading_space", "is_boundary_token")
SCALAR_FIELDS = {"format_version": "iu", "vocab_size": "iu", "tokenizer_kind": "U", "source_model_name": "U"}


@dataclass(frozen=True)
class ShippedTable:
    source: str  # for the report: the file, or the rule the judge applied
    base_bytes: np.ndarray  # int64 [n]
    has_leading_space: np.ndarray  # bool [n]
    is_boundary_token: np.ndarray  # bool [n]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.base_bytes)

    @property
    def per_id(self) -> np.ndarray:
        """int64 [n]: what each id counts when the token before it is not a boundary."""
        return self.base_bytes + self.has_leading_space

    def fit(self, vocab_size: int) -> ShippedTable:
        """The table over exactly `vocab_size` ids, as the public loader pads it: an id past the table counts 0
        bytes and is a boundary; ids past the vocabulary never occur."""
        n = min(self.size, vocab_size)
        base, lead, boundary = np.zeros(vocab_size, np.int64), np.zeros(vocab_size, bool), np.ones(vocab_size, bool)
        base[:n], lead[:n], boundary[:n] = self.base_bytes[:n], self.has_leading_space[:n], self.is_boundary_token[:n]
        return replace(self, base_bytes=base, has_leading_space=lead, is_boundary_token=boundary)


# --- reading a *.meta.npz ---------------------------------------------------------------------------------------


def read_meta_npz(path: str | Path) -> ShippedTable:
    """Read the arrays as data only: capped sizes, no pickles, checked dtypes and shapes.

    Raises TableError "<file>: <field>: <what>" for anything unreadable or malformed.
    """
    path = Path(path)
    try:
        raw, truncated = paths.read_regular_file(path, MAX_META_FILE_BYTES, follow_symlinks=False)
    except (OSError, ValueError) as e:
        raise TableError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e} (symlinks are refused)") from None
    if truncated:
        raise TableError(f"{path}: larger than the {MAX_META_FILE_BYTES:,}-byte limit")
    arrays = _npz_members(path, raw)
    missing = [name for name in ARRAY_FIELDS if name not in arrays]
    if missing:
        raise TableError(f"{path}: no {', '.join(missing)} array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    metadata: dict[str, Any] = {}
    for name, kinds in SCALAR_FIELDS.items():
        if name in arrays:
            metadata[name] = _scalar(path, name, arrays[name], kinds)
    version = metadata.get("format_version")
    if version is not None and version != FORMAT_VERSION:
        raise TableError(f"{path}: format_version: {version}, only {FORMAT_VERSION} is defined")
    metadata["other_fields"] = sorted(set(arrays) - set(ARRAY_FIELDS) - set(SCALAR_FIELDS))
    base = _vector(path, "base_bytes", arrays["base_bytes"], "iu")
    if base.size and (base.min() < 0 or base.max() > MAX_BYTES_PER_TOKEN):
        bad = int(np.flatnonzero((base < 0) | (base > MAX_BYTES_PER_TOKEN))[0])
        raise TableError(f"{path}: base_bytes: id {bad} has {int(base[bad])} bytes, outside 0..{MAX_BYTES_PER_TOKEN}")
    flags = []
    for name in ARRAY_FIELDS[1:]:
        values = _vector(path, name, arrays[name], "biu")
        if values.shape != base.shape:
            raise TableError(f"{path}: {name}: shape {values.shape}, but base_bytes has {base.shape}")
        if values.dtype.kind != "b" and values.size and not np.isin(values, (0, 1)).all():
            raise TableError(f"{path}: {name}: values other than 0 and 1 in a flag array")
        flags.append(values.astype(bool))
    return ShippedTable(path.name, base.astype(np.int64), flags[0], flags[1], metadata)


def _npz_members(path: Path, raw: bytes) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise TableError(f"{path}: {len(members)} arrays, more than the {MAX_MEMBERS} a byte table needs")
            for member in members:
                name = member.filename.removesuffix(".npy")
                if name == member.filename or "/" in name or name in arrays:
                    raise TableError(f"{path}: member {member.filename!r} is not one .npy array of an .npz")
                if member.file_size > MAX_MEMBER_BYTES:
                    raise TableError(f"{path}: {name}: {member.file_size:,} bytes, more than {MAX_MEMBER_BYTES:,}")
                with archive.open(member) as stream:
                    data = stream.read(MAX_MEMBER_BYTES + 1)  # never trust the declared size alone
                if len(data) > MAX_MEMBER_BYTES:
                    raise TableError(f"{path}: {name}: more than {MAX_MEMBER_BYTES:,} bytes uncompressed")
                arrays[name] = _npy(path, name, data)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError) as e:
        raise TableError(f"{path}: not a readable .npz archive: {str(e).strip() or type(e).__name__}") from None
    return arrays


def _npy(path: Path, name: str, data: bytes) -> np.ndarray:
    """One .npy member: the header is checked before any data is read, and pickles are never loaded."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy format version {version}")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = reader(stream)
    except ValueError as e:
        raise TableError(f"{path}: {name}: not a .npy array: {e}") from None
    if dtype.hasobject:
        raise TableError(f"{path}: {name}: object array (pickled Python objects); the judge reads plain arrays only")
    if len(shape) > 1 or int(np.prod(shape, dtype=np.int64)) > MAX_VOCAB_SIZE:
        raise TableError(f"{path}: {name}: shape {shape}: at most one dimension of {MAX_VOCAB_SIZE:,} entries")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise TableError(f"{path}: {name}: unreadable array data: {str(e).strip() or type(e).__name__}") from None


def _vector(path: Path, name: str, values: np.ndarray, kinds: str) -> np.ndarray:
    if values.ndim != 1:
        raise TableError(f"{path}: {name}: shape {values.shape}, expected one id per entry")
    if values.dtype.kind not in kinds:
        expected = "integer byte counts" if kinds == "iu" else "booleans"
        raise TableError(f"{path}: {name}: dtype {values.dtype}, expected {expected}")
    return values


def _scalar(path: Path, name: str, values: np.ndarray, kinds: str) -> int | str:
    """A 0-d array or a one-element vector, as the public loader reads it."""
    if values.size != 1 or values.dtype.kind not in kinds:
        raise TableError(f"{path}: {name}: {values.dtype} of shape {values.shape}, expected one "
                         f"{'integer' if kinds == 'iu' else 'string'}")
    value = values.reshape(-1)[0].item()
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        raise TableError(f"{path}: {name}: {len(value):,} characters, at most {MAX_TEXT_CHARS}")
    return value


# --- rules ----------------------------------------------------------------------------------------------------


def baseline_rule(truth: TokenizerTruth, source: str = "the baseline's rule") -> ShippedTable:
    """The competition baseline's `build_sentencepiece_luts`, applied by the judge to a SentencePiece model:
    control/unknown/unused ids count 0 and are boundaries, a byte piece counts 1, any other piece counts the UTF-8
    of its text with a leading `▁` split off as the leading-space flag (so a `▁` elsewhere counts 3 bytes)."""
    special = np.isin(truth.kinds, SPECIAL_KINDS)
    lead = (truth.kinds == NORMAL) & np.array([p.startswith(SPACE_MARK) for p in truth.pieces])
    base = np.array([0 if s else 1 if k == BYTE else len((p[1:] if ld else p).encode("utf-8"))
                     for p, k, s, ld in zip(truth.pieces, truth.kinds, special, lead, strict=True)], np.int64)
    return ShippedTable(source, base, lead, special.copy(), {"rule": "baseline"})


def judge_rule(truth: TokenizerTruth, pending_delete: np.ndarray | None = None,
               source: str = "the judge's rule") -> ShippedTable:
    """The table a record should ship: every id counts the bytes it decodes to, a leading space is split off as
    the flag, and the boundaries are exactly the tokens after which that space stands for nothing: BOS when
    the tokenizer adds a dummy prefix, an id whose trailing delete marker removes it (TokenMonster capcode)."""
    if truth.kind == "tokenmonster":  # no `▁`: a leading space is the first byte an id decodes to
        lead = np.array([k == NORMAL and b[:1] == b" " for b, k in zip(truth.piece_bytes, truth.kinds, strict=True)])
    else:
        lead = truth.leading_space
    boundary = np.zeros(truth.vocab_size, bool) if pending_delete is None else pending_delete.copy()
    if truth.add_dummy_prefix and 0 <= truth.bos_id < truth.vocab_size:
        boundary[truth.bos_id] = True
    return ShippedTable(source, truth.byte_counts - lead, lead, boundary, {"rule": "judge"})


def formula_bytes(table: ShippedTable, ids: np.ndarray, *, first_is_context: bool) -> int:
    """The public rule summed over one token stream.

    first_is_context: ids[0] only opens the stream (the BOS before the first document) and is not scored; else
    every id is scored and the first has no token before it (its leading space counts).
    """
    ids = np.asarray(ids, np.int64)
    if ids.size == 0:
        return 0
    if first_is_context:
        targets, after_boundary = ids[1:], table.is_boundary_token[ids[:-1]]
    else:
        targets = ids
        after_boundary = np.concatenate(([False], table.is_boundary_token[ids[:-1]]))
    return int(table.base_bytes[targets].sum() + np.count_nonzero(table.has_leading_space[targets] & ~after_boundary))

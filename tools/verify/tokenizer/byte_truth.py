"""The judge's own answer to "which bytes of the original text does each token stand for".

The bpb denominator must be the number of UTF-8 bytes of the original validation text. A record's per-token
lookup table is only a claim about that number; the judge recounts it by decoding every validation token back
to bytes with its own table (below) and checking that the result *is* the original text, byte for byte.

Per-token byte strings (docs/CONTRACTS.md section 1):
- SentencePiece: piece text with every `▁` -> b" "; byte-fallback `<0xNN>` -> that byte; control, unknown and
  unused pieces -> b"" (they stand for no text).
- Byte tokenizer (`tokenizer.json`): token id = the byte; BOS -> b"".
Two context rules, applied while decoding a document:
- a model trained with `add_dummy_prefix` inserts a `▁` that is not in the text at the start of each document:
  the first decoded space of a document stands for nothing;
- a vocabulary without a usable standalone `▁` piece byte-encodes a lone space as `<0xE2><0x96><0x81>` (the
  UTF-8 of `▁`): those three tokens together stand for one space byte, which no per-token table can express.

Only pure functions and frozen data here; file checks and reporting live in tools.verify.tokenizer.audit.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SPACE_MARK = "\u2581"  # SentencePiece's visible space, "▁"
SPACE_MARK_UTF8 = SPACE_MARK.encode("utf-8")  # b"\xe2\x96\x81"
MAX_TOKENIZER_FILE_BYTES = 64 * 1024**2  # far above any 16 MB-artifact tokenizer; caps what a record can make us parse
MAX_VOCAB_SIZE = 1 << 20
ENCODE_BATCH_BYTES = 4 * 1024**2  # text per encode call: enough for threads, bounded memory for Python int lists
# SentencePiece's BPE encoder gets slower per byte on long inputs; ~2k-character chunks encode about twice as fast
# and give the threads work to share. Only used where splitting provably changes nothing (see `split_safe`).
ENCODE_CHUNK_CHARS = 2048

# Token kinds (one uint8 per id). User-defined pieces are NORMAL: like learned pieces, they stand for their text.
NORMAL, CONTROL, UNKNOWN, UNUSED, BYTE = range(5)
SPECIAL_KINDS = (CONTROL, UNKNOWN, UNUSED)


class TokenizerError(ValueError):
    """A tokenizer file that cannot be read or is not one of the supported kinds (message names the file)."""


@dataclass(frozen=True)
class TokenizerTruth:
    """Everything the judge knows about a tokenizer's ids, computed once from the tokenizer file."""

    path: Path
    kind: str  # "sentencepiece" | "byte"
    vocab_size: int
    bos_id: int
    pieces: tuple[str, ...]  # printable name of each id
    piece_bytes: list[bytes]  # what each id stands for out of context
    byte_counts: np.ndarray  # int64 [V]: len(piece_bytes[id])
    kinds: np.ndarray  # uint8 [V]: NORMAL, CONTROL, ...
    byte_values: np.ndarray  # int16 [V]: the byte of a byte token, else -1
    space_marks: np.ndarray  # int64 [V]: number of `▁` in a normal piece
    valid_utf8_alone: np.ndarray  # bool [V]: piece_bytes decodes as UTF-8 on its own
    add_dummy_prefix: bool
    has_standalone_space: bool  # a normal/user piece that is exactly `▁` exists
    space_byte_ids: tuple[int, int, int] | None  # ids of <0xE2>, <0x96>, <0x81> when the vocabulary has them
    properties: dict[str, Any] = field(default_factory=dict)  # normalizer settings, for the report
    split_safe: bool = False  # encode(a + b) == encode(a) + encode(b) whenever b starts with a space
    sha256: str = ""
    _processor: Any = field(default=None, repr=False, compare=False)

    @property
    def leading_space(self) -> np.ndarray:
        """bool [V]: the id's bytes start with a space that came from `▁`."""
        return (self.kinds != BYTE) & (self.space_marks > 0) & np.array([b[:1] == b" " for b in self.piece_bytes])

    def encode_texts(self, texts: Sequence[bytes], num_threads: int = 2) -> list[list[int]]:
        """Encode whole documents exactly as the dataset does (no BOS here); texts are the raw document bytes."""
        if self.kind == "byte":
            return [list(text) for text in texts]
        strings = [text.decode("utf-8") for text in texts]  # UnicodeDecodeError is reported by the caller
        if not self.split_safe:
            return self._processor.encode(strings, out_type=int, num_threads=num_threads)
        chunked = [split_before_spaces(text, ENCODE_CHUNK_CHARS) for text in strings]
        encoded = iter(self._processor.encode(list(itertools.chain.from_iterable(chunked)), out_type=int,
                                              num_threads=num_threads))
        return [list(itertools.chain.from_iterable(itertools.islice(encoded, len(parts)))) for parts in chunked]

    def describe(self) -> str:
        if self.kind == "byte":
            return f"byte tokenizer, {self.vocab_size} ids, BOS={self.bos_id}"
        props = self.properties
        parts = [
            f"sentencepiece {props.get('model_type', '?')}, {self.vocab_size} ids",
            f"normalization {props.get('normalization', '?')!s}",
            "dummy prefix" if self.add_dummy_prefix else "no dummy prefix",
            "byte fallback" if props.get("byte_fallback") else "no byte fallback",
        ]
        if props.get("remove_extra_whitespaces"):
            parts.append("collapses whitespace")
        if not self.has_standalone_space:
            parts.append("NO standalone ▁ piece")
        return ", ".join(parts)


def split_before_spaces(text: str, size: int) -> list[str]:
    """Cut `text` into pieces of about `size` characters, each cut placed just before a space."""
    parts = []
    start = 0
    while len(text) - start > size:
        cut = text.find(" ", start + size)
        if cut < 0:
            break
        parts.append(text[start:cut])
        start = cut
    parts.append(text[start:])
    return parts


def _split_safe(properties: dict[str, Any], pieces: Sequence[str], kinds: np.ndarray) -> bool:
    """Whether encoding may be split just before a space without changing a single id.

    With identity normalization, no dummy prefix, no whitespace cleanup and `▁` escaping, a space is one `▁` in
    the normalized text. BPE merges only ever form vocabulary pieces; if no piece has a `▁` after its first
    character, no symbol can span the point just before a `▁`, so the two sides are encoded independently (the
    merge order inside each side is unchanged: it is by score, then by position). Anything else: encode whole.
    tests/test_tokenizer_audit.py checks the equality on random texts.
    """
    return (
        properties.get("model_type") == "bpe"
        and properties.get("normalization") == "identity"
        and not properties.get("has_charsmap")
        and properties.get("escape_whitespaces", False)
        and not properties.get("add_dummy_prefix")
        and not properties.get("remove_extra_whitespaces")
        and not properties.get("treat_whitespace_as_suffix")
        and not any(k == NORMAL and p.find(SPACE_MARK, 1) >= 0 for p, k in zip(pieces, kinds, strict=True))
        # A `▁` that is itself a piece is never unknown, so no run of <unk> (merged into one id) crosses the cut.
        and any(k == NORMAL and p == SPACE_MARK for p, k in zip(pieces, kinds, strict=True))
    )


def _read_capped(path: Path) -> bytes:
    try:
        if path.is_symlink():
            raise TokenizerError(f"{path}: is a symlink; the judge reads only regular files")
        size = path.stat().st_size
        if size > MAX_TOKENIZER_FILE_BYTES:
            raise TokenizerError(f"{path}: {size:,} bytes is larger than the {MAX_TOKENIZER_FILE_BYTES:,}-byte limit")
        return path.read_bytes()
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read tokenizer: {e.strerror or e}") from None


def load_tokenizer(path: str | Path) -> TokenizerTruth:
    """Read a SentencePiece `.model` or a byte `tokenizer.json` and build the judge's per-id truth."""
    import hashlib

    path = Path(path)
    data = _read_capped(path)
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix == ".json":
        return _byte_tokenizer(path, data, digest)
    return _sentencepiece_tokenizer(path, data, digest)


def _byte_tokenizer(path: Path, data: bytes, digest: str) -> TokenizerTruth:
    try:
        spec = json.loads(data)
    except ValueError as e:
        raise TokenizerError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(spec, dict) or spec.get("type") != "byte":
        raise TokenizerError(f"{path}: unsupported tokenizer.json (expected {{\"type\": \"byte\", ...}})")
    vocab_size, bos_id = spec.get("vocab_size"), spec.get("bos_id")
    if type(vocab_size) is not int or type(bos_id) is not int or not 256 < vocab_size <= 512 or not 256 <= bos_id < vocab_size:
        raise TokenizerError(f"{path}: byte tokenizer needs int vocab_size in 257..512 and bos_id in 256..vocab_size-1")
    piece_bytes = [bytes([i]) for i in range(256)] + [b""] * (vocab_size - 256)
    pieces = tuple(f"<0x{i:02X}>" for i in range(256)) + tuple(
        "<bos>" if i == bos_id else f"<unused{i}>" for i in range(256, vocab_size)
    )
    kinds = np.array([BYTE] * 256 + [CONTROL if i == bos_id else UNUSED for i in range(256, vocab_size)], np.uint8)
    byte_values = np.full(vocab_size, -1, np.int16)
    byte_values[:256] = np.arange(256)
    return TokenizerTruth(
        path=path,
        kind="byte",
        vocab_size=vocab_size,
        bos_id=bos_id,
        pieces=pieces,
        piece_bytes=piece_bytes,
        byte_counts=np.array([len(b) for b in piece_bytes], np.int64),
        kinds=kinds,
        byte_values=byte_values,
        space_marks=np.zeros(vocab_size, np.int64),
        valid_utf8_alone=np.array([_valid_utf8(b) for b in piece_bytes]),
        add_dummy_prefix=False,
        has_standalone_space=True,  # spaces are plain bytes: nothing to be missing
        space_byte_ids=None,
        properties={"type": "byte"},
        sha256=digest,
    )


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _normalizer_properties(data: bytes) -> dict[str, Any]:
    """Settings stored in the model proto that change what encode() does to the text."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto.FromString(data)
    normalizer, trainer = proto.normalizer_spec, proto.trainer_spec
    model_types = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
    return {
        "model_type": model_types.get(trainer.model_type, str(trainer.model_type)),
        "normalization": normalizer.name or ("custom" if normalizer.precompiled_charsmap else "identity"),
        "has_charsmap": bool(normalizer.precompiled_charsmap),
        "add_dummy_prefix": bool(normalizer.add_dummy_prefix),
        "remove_extra_whitespaces": bool(normalizer.remove_extra_whitespaces),
        "escape_whitespaces": bool(normalizer.escape_whitespaces),
        "treat_whitespace_as_suffix": bool(trainer.treat_whitespace_as_suffix),
        "byte_fallback": bool(trainer.byte_fallback),
    }


def _sentencepiece_tokenizer(path: Path, data: bytes, digest: str) -> TokenizerTruth:
    import sentencepiece as spm

    try:
        processor = spm.SentencePieceProcessor(model_proto=data)
        properties = _normalizer_properties(data)
    except Exception as e:  # the C++ parser reports any malformed proto as a RuntimeError
        raise TokenizerError(f"{path}: not a SentencePiece model: {str(e).strip() or type(e).__name__}") from None
    vocab_size = processor.get_piece_size()
    if not 0 < vocab_size <= MAX_VOCAB_SIZE:
        raise TokenizerError(f"{path}: vocabulary size {vocab_size} outside 1..{MAX_VOCAB_SIZE}")
    bos_id = processor.bos_id()
    if not 0 <= bos_id < vocab_size:
        raise TokenizerError(f"{path}: the model has no BOS piece (bos_id={bos_id}); documents are [BOS] + encode(text)")
    pieces = tuple(processor.id_to_piece(i) for i in range(vocab_size))
    kinds = np.empty(vocab_size, np.uint8)
    byte_values = np.full(vocab_size, -1, np.int16)
    piece_bytes: list[bytes] = []
    for i, piece in enumerate(pieces):
        if processor.is_byte(i):
            kinds[i] = BYTE
            byte_values[i] = int(piece[3:5], 16)  # "<0xNN>"
            piece_bytes.append(bytes([byte_values[i]]))
        elif processor.is_control(i) or processor.is_unknown(i) or processor.is_unused(i):
            kinds[i] = CONTROL if processor.is_control(i) else UNKNOWN if processor.is_unknown(i) else UNUSED
            piece_bytes.append(b"")
        else:
            # Normal and user-defined pieces alike: the text they stand for, with ▁ as the space it marks.
            kinds[i] = NORMAL
            piece_bytes.append(piece.replace(SPACE_MARK, " ").encode("utf-8"))
    space_marks = np.array([p.count(SPACE_MARK) if k == NORMAL else 0 for p, k in zip(pieces, kinds, strict=True)], np.int64)
    byte_id = {int(v): i for i, v in enumerate(byte_values) if v >= 0}
    space_ids = tuple(byte_id.get(b) for b in SPACE_MARK_UTF8)
    return TokenizerTruth(
        path=path,
        kind="sentencepiece",
        vocab_size=vocab_size,
        bos_id=bos_id,
        pieces=pieces,
        piece_bytes=piece_bytes,
        byte_counts=np.array([len(b) for b in piece_bytes], np.int64),
        kinds=kinds,
        byte_values=byte_values,
        space_marks=space_marks,
        valid_utf8_alone=np.array([_valid_utf8(b) for b in piece_bytes]),
        add_dummy_prefix=properties["add_dummy_prefix"],
        has_standalone_space=any(p == SPACE_MARK and k == NORMAL for p, k in zip(pieces, kinds, strict=True)),
        space_byte_ids=space_ids if None not in space_ids else None,  # type: ignore[arg-type]
        properties=properties,
        split_safe=_split_safe(properties, pieces, kinds),
        sha256=digest,
        _processor=processor,
    )


# --- decoding a validation stream ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """The first place where decoded tokens differ from the original text."""

    document: str
    offset: int  # byte offset in the document
    before: bytes  # the original bytes just before the offset (equal in both)
    expected: bytes  # original bytes from the offset
    decoded: bytes  # decoded bytes from the offset
    token_index: int  # index in the document's token list (0 = first token after BOS)
    tokens: tuple[tuple[int, int, str], ...]  # (index, id, piece) around the mismatch

    def describe(self) -> str:
        around = " ".join(f"{'>' if i == self.token_index else ''}{tid}:{piece!r}" for i, tid, piece in self.tokens)
        return (
            f"{self.document}: byte {self.offset:,} (after {self.before!r}): original {self.expected!r} but the "
            f"tokens decode to {self.decoded!r} (tokens {around})"
        )


@dataclass
class StreamStats:
    """Counts over the validation token stream ([BOS] + encode(doc) for every doc, concatenated).

    Scored targets are every token after the very first (docs/CONTRACTS.md section 1), so every per-table byte
    sum is a dot product with `target_counts` plus the two context corrections.
    """

    vocab_size: int
    documents: int = 0
    tokens: int = 0  # including one BOS per document
    original_bytes: int = 0
    decoded_bytes: int = 0  # after the context rules; equals original_bytes when the round trip holds
    target_counts: np.ndarray = None  # type: ignore[assignment]  # int64 [V]
    first_token_counts: np.ndarray = None  # type: ignore[assignment]  # int64 [V]: the token right after each BOS
    space_triples: int = 0  # lone spaces byte-encoded as <0xE2><0x96><0x81>
    dummy_prefix_drops: int = 0  # documents whose first decoded space was the dummy prefix
    mismatched_documents: int = 0
    first_mismatch: Mismatch | None = None

    def __post_init__(self) -> None:
        if self.target_counts is None:
            self.target_counts = np.zeros(self.vocab_size, np.int64)
        if self.first_token_counts is None:
            self.first_token_counts = np.zeros(self.vocab_size, np.int64)

    @property
    def targets(self) -> int:
        return max(self.tokens - 1, 0)


def _batches(documents: Iterable[tuple[str, bytes]], batch_bytes: int) -> Iterable[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    size = 0
    for doc in documents:
        batch.append(doc)
        size += len(doc[1])
        if size >= batch_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def decode_document(truth: TokenizerTruth, ids: Sequence[int]) -> tuple[bytes, int, bool]:
    """The bytes a document's tokens (without BOS) stand for: (bytes, byte-encoded spaces, dummy prefix dropped)."""
    decoded = b"".join(map(truth.piece_bytes.__getitem__, ids))
    triples = 0
    if truth.space_byte_ids is not None and SPACE_MARK_UTF8 in decoded:
        # Only three byte tokens can produce these bytes: normal pieces already turned their ▁ into spaces.
        triples = decoded.count(SPACE_MARK_UTF8)
        decoded = decoded.replace(SPACE_MARK_UTF8, b" ")
    dropped = truth.add_dummy_prefix and decoded[:1] == b" "
    return (decoded[1:] if dropped else decoded), triples, dropped


def _count_space_triples(ids: np.ndarray, space_ids: tuple[int, int, int] | None) -> int:
    if space_ids is None or ids.size < 3:
        return 0
    a, b, c = space_ids
    return int(np.count_nonzero((ids[:-2] == a) & (ids[1:-1] == b) & (ids[2:] == c)))


def scan_documents(
    truth: TokenizerTruth,
    documents: Iterable[tuple[str, bytes]],
    *,
    num_threads: int = 2,
    batch_bytes: int = ENCODE_BATCH_BYTES,
    context_tokens: int = 4,
) -> StreamStats:
    """Encode every document as the dataset does, decode it with the judge's table, compare with the original.

    Raises UnicodeDecodeError-derived TokenizerError naming the document when a SentencePiece document is not
    UTF-8 (it could not have been encoded as text at all).
    """
    stats = StreamStats(vocab_size=truth.vocab_size)
    for batch in _batches(documents, batch_bytes):
        try:
            encoded = truth.encode_texts([text for _, text in batch], num_threads=num_threads)
        except UnicodeDecodeError:
            _raise_first_non_utf8(batch)
        id_triples = 0
        for (name, original), ids in zip(batch, encoded, strict=True):
            decoded, triples, dropped = decode_document(truth, ids)
            stats.space_triples += triples
            stats.dummy_prefix_drops += dropped
            stats.decoded_bytes += len(decoded)
            stats.original_bytes += len(original)
            if decoded != original:
                stats.mismatched_documents += 1
                if stats.first_mismatch is None:
                    stats.first_mismatch = locate_mismatch(truth, name, original, decoded, ids, context_tokens)
            if ids:
                stats.first_token_counts[ids[0]] += 1
            id_triples += triples
        # Count ids once per batch, vectorized: one BOS per document, then its tokens.
        lengths = [len(ids) for ids in encoded]
        flat = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=sum(lengths))
        if flat.size and (flat.min() < 0 or flat.max() >= truth.vocab_size):
            raise TokenizerError(f"{truth.path}: encode() returned ids outside 0..{truth.vocab_size - 1}")
        with_bos = np.insert(flat, np.cumsum([0, *lengths[:-1]]), truth.bos_id)
        stats.target_counts += np.bincount(with_bos, minlength=truth.vocab_size)
        # The byte-level replacement above and the id pattern must agree, or the judge's own decoding is wrong.
        if _count_space_triples(with_bos, truth.space_byte_ids) != id_triples:
            raise AssertionError("byte-encoded space count disagrees between ids and decoded bytes")
        stats.documents += len(batch)
        stats.tokens += with_bos.size
    if stats.tokens:
        stats.target_counts[truth.bos_id] -= 1  # the very first token is context, never a target
    return stats


def _raise_first_non_utf8(batch: list[tuple[str, bytes]]) -> None:
    for name, text in batch:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TokenizerError(f"{name}: not valid UTF-8 at byte {e.start:,}; a text tokenizer cannot encode it") from None
    raise AssertionError("unreachable: a batch failed to decode but no document is invalid")


def token_output_lengths(truth: TokenizerTruth, ids: Sequence[int]) -> np.ndarray:
    """Bytes each token of one document contributes after the context rules (used to place a mismatch)."""
    arr = np.asarray(ids, dtype=np.int64)
    lengths = truth.byte_counts[arr].copy()
    if truth.space_byte_ids is not None and arr.size >= 3:
        a, b, c = truth.space_byte_ids
        starts = np.flatnonzero((arr[:-2] == a) & (arr[1:-1] == b) & (arr[2:] == c))
        lengths[starts], lengths[starts + 1], lengths[starts + 2] = 1, 0, 0
    if truth.add_dummy_prefix:
        nonempty = np.flatnonzero(lengths)
        if nonempty.size and decode_document(truth, ids)[2]:
            lengths[nonempty[0]] -= 1
    return lengths


def locate_mismatch(
    truth: TokenizerTruth, name: str, original: bytes, decoded: bytes, ids: Sequence[int], context_tokens: int = 4
) -> Mismatch:
    common = min(len(original), len(decoded))
    a = np.frombuffer(original, np.uint8, count=common)
    b = np.frombuffer(decoded, np.uint8, count=common)
    differ = np.flatnonzero(a != b)
    offset = int(differ[0]) if differ.size else common
    ends = np.cumsum(token_output_lengths(truth, ids))
    token_index = min(int(np.searchsorted(ends, offset, side="right")), max(len(ids) - 1, 0))
    lo, hi = max(token_index - context_tokens, 0), min(token_index + context_tokens + 1, len(ids))
    return Mismatch(
        document=name,
        offset=offset,
        before=original[max(offset - 12, 0):offset],
        expected=original[offset:offset + 16],
        decoded=decoded[offset:offset + 16],
        token_index=token_index,
        tokens=tuple((i, int(ids[i]), truth.pieces[int(ids[i])]) for i in range(lo, hi)),
    )

"""TokenMonster binary vocabularies (`*.vocab`), read as hostile data, and the judge's truth for their ids.

The file layout (little-endian; "u24" is a 3-byte unsigned integer, 0xFFFFFF meaning "none"), as the format's
save/load code documents it and as real vocabularies confirm byte for byte:

    header   capcode u8 (0..2), charset u8 (0 none, 1 UTF-8, 2 UTF-16), normalization u8 (flag bits),
             mode u8, single-byte reserve u8, 3 reserved bytes
             unk_id u24, vocab_size u24, id_count u24, entry_count u24, delete_id u24, max_token_length u8
    entries  entry_count times: key_length u8, key bytes (at most 40), flag u8, word_count u8,
             alternative u24, alternative2 u24 (earlier entries or none), id u24 (< id_count), score float32
    tail     256 begin-byte classes, deleted_count u24, then deleted_count times: length u8, bytes, id u24, score f32

Several entries may carry one id (a token and its capcode variants, e.g. `a` and `D a`); decoding an id gives
the key of the *last* entry with that id, as the reference loader does. Keys are in capcode form: what an id
stands for in the text is tools.verify.tokenizer.capcode.decode of its bytes.

Only pure functions and frozen data here; the audit lives in tools.verify.tokenizer.shipped.
"""

from __future__ import annotations

import hashlib
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.verify.tokenizer import capcode
from tools.verify.tokenizer.byte_truth import (
    BYTE,
    CONTROL,
    MAX_VOCAB_SIZE,
    NORMAL,
    UNKNOWN,
    UNUSED,
    TokenizerError,
    TokenizerTruth,
    _read_capped,
    _valid_utf8,
)

NONE_U24 = 0xFFFFFF
MAX_KEY_LENGTH = 40  # the reference loader rejects longer keys
HEADER_BYTES = 8 + 5 * 3 + 1
NORMALIZATION_NAMES = {1: "NFD", 2: "lowercase", 4: "accents", 8: "quotemarks", 16: "collapse", 32: "trim",
                       64: "leadingspace", 128: "unixlines"}


@dataclass(frozen=True)
class TokenMonsterVocab:
    path: Path
    sha256: str
    capcode: int  # 0 none, 1 delete marker only, 2 full
    charset: int  # 0 raw bytes, 1 UTF-8
    normalization: int  # flag bits, NORMALIZATION_NAMES
    mode: int
    reserve: int  # which single bytes the vocabulary was built to include
    vocab_size: int  # as the header states it
    unk_id: int | None
    delete_id: int | None
    max_token_length: int
    id_bytes: tuple[bytes, ...]  # per id: the bytes decoding emits (capcode form); b"" for an id without an entry
    keys: tuple[tuple[bytes, int], ...]  # every (key, id) the encoder may match
    special_ids: frozenset[int]
    deleted: int  # tokens removed from the vocabulary (kept in the file for restoring)

    @property
    def id_count(self) -> int:
        return len(self.id_bytes)

    def describe(self) -> str:
        norm = [name for bit, name in NORMALIZATION_NAMES.items() if self.normalization & bit] or ["none"]
        return (f"TokenMonster vocabulary, {self.id_count} ids, capcode {self.capcode}, "
                f"{['raw bytes', 'UTF-8', 'UTF-16'][self.charset]}, normalization {'+'.join(norm)}, "
                f"{'no UNK' if self.unk_id is None else f'UNK={self.unk_id}'}")


class _Reader:
    """Bounds-checked little-endian reads; running past the end is a TokenizerError naming the file and offset."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise TokenizerError(f"{self.path}: truncated TokenMonster vocabulary: {what} at byte {self.pos:,} "
                                 f"runs past the end ({len(self.data):,} bytes)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u24(self, what: str) -> int:
        return int.from_bytes(self.take(3, what), "little")

    def f32(self, what: str) -> float:
        return struct.unpack("<f", self.take(4, what))[0]


def looks_like_tokenmonster(head: bytes) -> bool:
    """Sniff the header: small capcode and charset codes and zero reserved bytes (a SentencePiece text `.vocab`
    starts with `<unk>`, a SentencePiece `.model` with a protobuf tag)."""
    return len(head) >= HEADER_BYTES and head[0] <= 2 and head[1] <= 2 and head[5:8] == b"\0\0\0"


def read_vocab(path: str | Path) -> TokenMonsterVocab:
    """Parse a TokenMonster `.vocab` file; TokenizerError (message "<path>: <what>") for anything malformed."""
    path = Path(path)
    data = _read_capped(path)
    r = _Reader(data, path)
    capcode_level, charset, normalization, mode, reserve = r.take(5, "header")
    r.take(3, "header")
    if capcode_level > 2 or charset > 2:
        raise TokenizerError(f"{path}: not a TokenMonster vocabulary (capcode {capcode_level}, charset {charset})")
    if charset == 2:
        raise TokenizerError(f"{path}: UTF-16 TokenMonster vocabularies are not supported (the text is UTF-8)")
    unk_id, vocab_size, id_count, entry_count, delete_id = (r.u24(name) for name in
                                                           ("unk_id", "vocab_size", "id count", "entry count", "delete_id"))
    max_token_length = r.u8("max token length")
    if not 0 < id_count <= MAX_VOCAB_SIZE or entry_count > 4 * MAX_VOCAB_SIZE:
        raise TokenizerError(f"{path}: {id_count:,} ids and {entry_count:,} entries: outside the judge's limits")
    id_bytes: list[bytes | None] = [None] * id_count
    keys: list[tuple[bytes, int]] = []
    special: set[int] = set()
    for index in range(entry_count):
        where = f"entry {index}"
        length = r.u8(where)
        if length > MAX_KEY_LENGTH:
            raise TokenizerError(f"{path}: {where}: key of {length} bytes (at most {MAX_KEY_LENGTH})")
        key = r.take(length, where)
        flag, _words = r.u8(where), r.u8(where)
        alternatives = r.u24(where), r.u24(where)
        token_id = r.u24(where)
        r.f32(where)
        if any(a != NONE_U24 and a >= index for a in alternatives):
            raise TokenizerError(f"{path}: {where}: refers to a later entry (the file is corrupt)")
        if token_id >= id_count:
            raise TokenizerError(f"{path}: {where}: id {token_id} outside 0..{id_count - 1}")
        id_bytes[token_id] = key  # the last entry of an id wins, as in the reference loader
        keys.append((key, token_id))
        if flag & 64:
            special.add(token_id)
    r.take(256, "begin-byte table")
    deleted = r.u24("deleted count")
    for index in range(deleted):
        r.take(r.u8(f"deleted {index}"), f"deleted {index}")
        r.take(7, f"deleted {index}")
    if r.pos != len(data):
        raise TokenizerError(f"{path}: {len(data) - r.pos:,} unexpected bytes after the vocabulary")
    return TokenMonsterVocab(
        path=path, sha256=hashlib.sha256(data).hexdigest(), capcode=capcode_level, charset=charset,
        normalization=normalization, mode=mode, reserve=reserve, vocab_size=vocab_size,
        unk_id=None if unk_id == NONE_U24 else unk_id, delete_id=None if delete_id == NONE_U24 else delete_id,
        max_token_length=min(max_token_length or MAX_KEY_LENGTH, MAX_KEY_LENGTH),
        id_bytes=tuple(b if b is not None else b"" for b in id_bytes), keys=tuple(keys),
        special_ids=frozenset(special), deleted=deleted,
    )


# --- the judge's truth -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenMonsterTruth:
    """Per-id truth in the shape the bug-class attribution (tools.verify.tokenizer.byte_table) reads, plus the context."""

    vocab: TokenMonsterVocab
    truth: TokenizerTruth  # piece_bytes: what each id decodes to on its own
    pending_delete: np.ndarray  # bool [V]: the id ends with a delete marker: the next token loses its first char

    def decode(self, ids: Sequence[int]) -> bytes:
        """What a sequence of ids stands for, decoded as one stream (markers act across token boundaries)."""
        return capcode.decode(b"".join(self.vocab.id_bytes[i] for i in ids), self.vocab.capcode)[0]


def _piece_name(raw: bytes, kind: int) -> str:
    if kind == BYTE:
        return f"<0x{raw[0]:02X}>"
    return raw.decode("utf-8", "backslashreplace")


def tokenmonster_truth(vocab: TokenMonsterVocab) -> TokenMonsterTruth:
    """Each id's bytes out of context. A lone non-ASCII byte is this format's byte fallback (BYTE); an id that
    decodes to nothing but markers stands for no text (CONTROL)."""
    size = vocab.id_count
    kinds = np.full(size, NORMAL, np.uint8)
    byte_values = np.full(size, -1, np.int16)
    pending = np.zeros(size, bool)
    piece_bytes: list[bytes] = []
    names: list[str] = []
    for token_id, raw in enumerate(vocab.id_bytes):
        decoded, pending[token_id] = capcode.decode(raw, vocab.capcode)
        if token_id == vocab.unk_id:
            kinds[token_id], decoded = UNKNOWN, b""
        elif not raw:
            kinds[token_id] = UNUSED
        elif len(raw) == 1 and raw[0] >= 0x80:
            kinds[token_id], byte_values[token_id] = BYTE, raw[0]
        elif not decoded:
            kinds[token_id] = CONTROL
        piece_bytes.append(decoded)
        names.append("<unk>" if kinds[token_id] == UNKNOWN else _piece_name(raw, kinds[token_id]) if raw else "<none>")
    truth = TokenizerTruth(
        path=vocab.path,
        kind="tokenmonster",
        vocab_size=size,
        bos_id=-1,  # TokenMonster has no BOS: each document is its own token stream
        pieces=tuple(names),
        piece_bytes=piece_bytes,
        byte_counts=np.array([len(b) for b in piece_bytes], np.int64),
        kinds=kinds,
        byte_values=byte_values,
        space_marks=np.zeros(size, np.int64),
        valid_utf8_alone=np.array([_valid_utf8(b) for b in piece_bytes]),
        add_dummy_prefix=False,
        has_standalone_space=True,
        space_byte_ids=None,
        properties={"type": "tokenmonster", "capcode": vocab.capcode, "charset": vocab.charset,
                    "normalization": vocab.normalization, "unk_id": vocab.unk_id, "delete_id": vocab.delete_id},
        sha256=vocab.sha256,
    )
    return TokenMonsterTruth(vocab=vocab, truth=truth, pending_delete=pending)


# --- the judge's probe encoder -----------------------------------------------------------------------------------


def normalize(text: str, flags: int) -> str:
    """The vocabulary's normalization, as its flag bits are documented (applied before capcode)."""
    if flags & 128:
        text = text.replace("\r\n", "\n")
    if flags & 8:
        text = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"'})
    if flags & 16:
        while "  " in text:
            text = text.replace("  ", " ")
    if flags & 32:
        text = text.strip("".join(map(chr, range(33))))
    if flags & 64 and text and not text.startswith(" "):
        text = " " + text
    if flags & 4:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    if flags & 2:
        text = text.lower()
    if flags & 1:
        text = unicodedata.normalize("NFD", text)
    return text


def encode(vocab: TokenMonsterVocab, text: bytes, dictionary: dict[bytes, int] | None = None) -> tuple[list[int], int]:
    """Greedy longest-match ids for `text` and the number of bytes no token covers (dropped, or UNK when the
    vocabulary has one).

    Not TokenMonster's own ungreedy search: it picks other ids, but every id sequence it returns decodes as the
    reference decoder would, so a byte table that is right for the vocabulary must count it exactly.
    """
    table = dictionary if dictionary is not None else dict(vocab.keys)
    data = capcode.encode(normalize(text.decode("utf-8"), vocab.normalization), vocab.capcode).encode("utf-8")
    lengths = sorted({len(k) for k in table if k}, reverse=True)
    markers = frozenset(b"CWD") if vocab.capcode == 2 else frozenset()
    ids: list[int] = []
    missing = 0
    i = 0
    while i < len(data):
        best: tuple[int, int] | None = None
        for length in lengths:
            token_id = table.get(data[i:i + length]) if i + length <= len(data) else None
            if token_id is None:
                continue
            best = best or (token_id, length)
            # Like TokenMonster's scoring, do not end a token between two capcode markers (a delete would then
            # act through the next token): take a shorter match that does not, if there is one.
            end = i + length
            if not (data[end - 1] in markers and end < len(data) and data[end] in markers):
                best = (token_id, length)
                break
        if best is not None:
            ids.append(best[0])
            i += best[1]
        else:
            if vocab.unk_id is not None:
                ids.append(vocab.unk_id)
            missing += 1
            i += 1
    return ids, missing

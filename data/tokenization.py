"""Tokenizers of a dataset (docs/CONTRACTS.md, "Tokenizers" and "Bytes per token").

- SentencePiece BPE, trained deterministically on whole training documents;
- the byte tokenizer (id = byte value, 256 = BOS);
- the bytes-per-token table that turns a token count into the bpb denominator.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data.formats import DataError, canonical_json

SPACE_SYMBOL = "\u2581"  # SentencePiece's "▁": stands for one space byte
SENTENCEPIECE_FILE = "tokenizer.model"
BYTE_FILE = "tokenizer.json"
BYTE_TOKENIZER_SPEC = {"type": "byte", "vocab_size": 257, "bos_id": 256}
MIN_SENTENCEPIECE_VOCAB = 3 + 256 + 1  # control ids, byte pieces, at least one learned piece
MAX_VOCAB = 1 << 16  # shards store uint16 tokens


def sentencepiece_settings(vocab_size: int) -> dict:
    """Trainer settings that make training deterministic and the tokenizer lossless.

    One thread: the trainer records num_threads in the model file, so it must not depend on the machine.
    No normalization, no dummy prefix, no whitespace cleanup: encode/decode must round-trip byte for byte.
    input_sentence_size=0: every document is used, so no random sampling happens.
    """
    return {
        "model_type": "bpe",
        "vocab_size": vocab_size,
        "byte_fallback": True,
        "normalization_rule_name": "identity",
        "add_dummy_prefix": False,
        "remove_extra_whitespaces": False,
        "split_digits": True,
        "character_coverage": 0.9995,
        "input_sentence_size": 0,
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": -1,
        "num_threads": 1,
    }


def train_sentencepiece(texts: Sequence[str], vocab_size: int) -> bytes:
    """Train a BPE model on whole documents and return the model file's bytes.

    Documents are fed whole (not line by line) so the model learns pieces that contain newlines.
    """
    import sentencepiece as spm

    if not texts:
        raise DataError("cannot train a tokenizer on no training documents")
    longest = max(len(text.encode("utf-8")) for text in texts)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            max_sentence_length=min(longest + 1, 2**31 - 1),  # the trainer silently skips longer "sentences"
            minloglevel=2,
            **sentencepiece_settings(vocab_size),
        )
    except RuntimeError as e:
        raise DataError(f"SentencePiece training failed (vocab size {vocab_size}): {str(e).strip()}") from None
    return model.getvalue()


class SentencePieceTokenizer:
    kind = "sentencepiece-bpe"
    file_name = SENTENCEPIECE_FILE

    def __init__(self, model_bytes: bytes):
        import sentencepiece as spm

        self.model_bytes = model_bytes
        self.processor = spm.SentencePieceProcessor(model_proto=model_bytes)
        self.vocab_size = self.processor.get_piece_size()
        self.bos_id = self.processor.bos_id()

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Encode whole documents (no BOS) as uint16 arrays."""
        return [np.asarray(ids, dtype=np.uint16) for ids in self.processor.encode(list(texts))]

    def decode(self, token_arrays: Sequence[np.ndarray]) -> list[str]:
        return self.processor.decode([ids.tolist() for ids in token_arrays])


class ByteTokenizer:
    kind = "byte"
    file_name = BYTE_FILE
    vocab_size = BYTE_TOKENIZER_SPEC["vocab_size"]
    bos_id = BYTE_TOKENIZER_SPEC["bos_id"]
    model_bytes = canonical_json(BYTE_TOKENIZER_SPEC)

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16) for text in texts]

    def decode(self, token_arrays: Sequence[np.ndarray]) -> list[str]:
        return [ids.astype(np.uint8).tobytes().decode("utf-8", errors="replace") for ids in token_arrays]


def _load_byte_spec(path: Path) -> dict:
    try:
        spec = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read byte tokenizer: {e}") from None
    if spec != BYTE_TOKENIZER_SPEC:
        raise DataError(f"{path}: not the contract's byte tokenizer {BYTE_TOKENIZER_SPEC}")
    return spec


def load_tokenizer(path: str | Path) -> SentencePieceTokenizer | ByteTokenizer:
    """Load a dataset's tokenizer file: tokenizer.json (byte) or a SentencePiece model."""
    path = Path(path)
    if path.suffix == ".json":
        _load_byte_spec(path)
        return ByteTokenizer()
    try:
        return SentencePieceTokenizer(path.read_bytes())
    except (OSError, RuntimeError) as e:
        raise DataError(f"{path}: cannot load SentencePiece model: {e}") from None


def bytes_per_token(tokenizer_path: str | Path) -> np.ndarray:
    """int64 [V]: how many bytes of original text each token id stands for (the contract's rule).

    Control and unknown ids 0; byte pieces 1 (never the 3 bytes of U+FFFD); other pieces their UTF-8 length
    with every "▁" counted as one space. The dummy-prefix exception is context dependent: see leading_space_is_free.
    """
    tokenizer = load_tokenizer(tokenizer_path)
    if isinstance(tokenizer, ByteTokenizer):
        table = np.ones(tokenizer.vocab_size, dtype=np.int64)
        table[tokenizer.bos_id] = 0
        return table
    sp = tokenizer.processor
    ids = range(tokenizer.vocab_size)
    pieces = [sp.id_to_piece(i) for i in ids]
    no_text = np.fromiter((sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i) for i in ids), dtype=bool)
    is_byte = np.fromiter((sp.is_byte(i) for i in ids), dtype=bool)
    text_bytes = np.fromiter((len(p.replace(SPACE_SYMBOL, " ").encode("utf-8")) for p in pieces), dtype=np.int64)
    return np.where(no_text, 0, np.where(is_byte, 1, text_bytes)).astype(np.int64)


def leading_space_flags(tokenizer_path: str | Path) -> np.ndarray:
    """bool [V]: the token is a normal piece that starts with "▁"."""
    tokenizer = load_tokenizer(tokenizer_path)
    flags = np.zeros(tokenizer.vocab_size, dtype=bool)
    if isinstance(tokenizer, SentencePieceTokenizer):
        sp = tokenizer.processor
        for i in range(tokenizer.vocab_size):
            normal_piece = not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) or sp.is_unused(i))
            flags[i] = normal_piece and sp.id_to_piece(i).startswith(SPACE_SYMBOL)
    return flags


def leading_space_is_free(tokenizer_path: str | Path) -> bool:
    """True when the tokenizer inserts a "▁" that is not in the text at the start of each document
    (add_dummy_prefix=true); the leading "▁" of the token right after BOS then counts 0 bytes."""
    tokenizer = load_tokenizer(tokenizer_path)
    if isinstance(tokenizer, ByteTokenizer):
        return False
    pieces = tokenizer.processor.encode("a", out_type=str)
    return bool(pieces) and pieces[0].startswith(SPACE_SYMBOL)


def token_text_bytes(
    tokens: np.ndarray,
    table: np.ndarray,
    bos_id: int,
    leading_space: np.ndarray | None = None,
    previous: int | None = None,
) -> int:
    """Bytes of text that `tokens` stand for. leading_space: flags from leading_space_flags when
    leading_space_is_free (else None); previous: the token before tokens[0], if any (e.g. end of the last shard)."""
    tokens = np.asarray(tokens)
    total = int(table[tokens].sum())
    if leading_space is not None and tokens.size:
        total -= int(np.count_nonzero((tokens[:-1] == bos_id) & leading_space[tokens[1:]]))
        if previous is not None and previous == bos_id and leading_space[tokens[0]]:
            total -= 1
    return total


def target_bytes(tokens: np.ndarray, table: np.ndarray, bos_id: int, leading_space: np.ndarray | None = None) -> int:
    """Bytes of text the scored targets (every token after the first) stand for: the bpb denominator."""
    tokens = np.asarray(tokens)
    if tokens.size == 0:
        return 0
    return token_text_bytes(tokens[1:], table, bos_id, leading_space, previous=int(tokens[0]))


def val_bytes_from_tokens(val_tokens: np.ndarray, tokenizer_path: str | Path) -> int:
    """target_bytes with everything taken from the tokenizer file, as the trainer computes it."""
    tokenizer = load_tokenizer(tokenizer_path)
    leading_space = leading_space_flags(tokenizer_path) if leading_space_is_free(tokenizer_path) else None
    return target_bytes(val_tokens, bytes_per_token(tokenizer_path), tokenizer.bos_id, leading_space)

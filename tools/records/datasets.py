"""What a prepared dataset's manifest says each training log must state about it: the one rule the judge's `dataset`
check compares logs with and the run service writes its logs by.

Two kinds of dataset folder have a `manifest.json`:
- a tokenized dataset (docs/CONTRACTS.md §1, `data/prepare.py`): the manifest names its tokenizer (kind, file,
  sha256) and counts the tokens of its validation shards;
- a raw byte dataset (the run service's, `tools/service/dataset.py`, e.g. `shakespeare_bytes`): documents only, no
  tokenizer, no shards. It is read by the contract's fixed byte tokenizer (token id = byte value, BOS = 256), so its
  tokenizer is that spec (the sha256 of its canonical `tokenizer.json`, the very file a tokenized byte dataset
  ships) and its validation tokens are its validation bytes: each byte is one scored token, and the BOS a scoring
  window starts with is input, never a validation token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from data.formats import canonical_json
from data.tokenization import BYTE_TOKENIZER_SPEC

BYTE_TOKENIZER = "byte"  # the tracks.toml name of the byte tokenizer
BYTE_TOKENIZER_SHA256 = hashlib.sha256(canonical_json(BYTE_TOKENIZER_SPEC)).hexdigest()


def is_raw_byte_manifest(manifest: Mapping[str, Any]) -> bool:
    """A raw byte dataset's manifest: documents, no tokenizer and no shards."""
    return ("tokenizer" not in manifest and "shards" not in manifest
            and isinstance(manifest.get("documents"), list) and bool(manifest.get("documents")))


def tokenizer_label(manifest: Mapping[str, Any]) -> str | None:
    """The tracks.toml name of a manifest's tokenizer: `sp<V>` for SentencePiece, `byte` for bytes (a tokenized byte
    dataset or a raw one); None if unknown."""
    if is_raw_byte_manifest(manifest):
        return BYTE_TOKENIZER
    tokenizer = manifest.get("tokenizer") if isinstance(manifest.get("tokenizer"), dict) else {}
    kind, vocab = tokenizer.get("kind"), tokenizer.get("vocab_size")
    if kind == "byte":
        return BYTE_TOKENIZER
    if kind == "sentencepiece-bpe" and isinstance(vocab, int):
        return f"sp{vocab}"
    return None


def logged_facts(manifest: Mapping[str, Any], manifest_sha256: str) -> dict[str, Any]:
    """What every log scored on this dataset states (ParsedLog field -> value): the manifest's and tokenizer's
    sha256 and the validation tokens and bytes it scored. A value the manifest does not give is None."""
    if is_raw_byte_manifest(manifest):
        val_bytes = manifest.get("val_bytes")
        return {"manifest_sha256": manifest_sha256, "tokenizer_sha256": BYTE_TOKENIZER_SHA256,
                "val_tokens": val_bytes, "val_bytes": val_bytes}
    tokenizer = manifest.get("tokenizer") if isinstance(manifest.get("tokenizer"), dict) else {}
    return {"manifest_sha256": manifest_sha256, "tokenizer_sha256": tokenizer.get("sha256"),
            "val_tokens": manifest.get("val_tokens"), "val_bytes": manifest.get("val_bytes")}

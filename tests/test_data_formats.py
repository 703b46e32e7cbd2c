"""Shard and manifest formats, the bytes-per-token rule and the overlap hash (docs/CONTRACTS.md section 1)."""

import functools
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from data.formats import (
    HEADER_BYTES,
    SHARD_MAGIC,
    DataError,
    ShardFormatError,
    canonical_json,
    read_shard,
    read_shard_header,
    sha256_file,
    write_manifest,
    write_shard,
)
from data.overlap import overlap_report, shingle_hashes
from data.prepare import bytes_per_token, load_manifest
from data.tokenization import (
    BYTE_TOKENIZER_SPEC,
    SentencePieceTokenizer,
    leading_space_flags,
    leading_space_is_free,
    target_bytes,
    train_sentencepiece,
    val_bytes_from_tokens,
)

# --- shards ---


@pytest.mark.parametrize("tokens", [[], [0], [1, 2, 3, 65535], list(range(1000))])
def test_shard_round_trip(tmp_path, tokens):
    path = tmp_path / "s.bin"
    write_shard(path, np.array(tokens, dtype=np.int64))
    back = read_shard(path)
    assert back.dtype == np.uint16
    assert back.tolist() == tokens


def test_shard_header_is_the_contract(tmp_path):
    path = tmp_path / "s.bin"
    write_shard(path, np.arange(7, dtype=np.uint16))
    raw = path.read_bytes()
    header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
    assert header[:3].tolist() == [20240520, 1, 7]
    assert not header[3:].any()
    assert len(raw) == HEADER_BYTES + 7 * 2
    assert np.frombuffer(raw[HEADER_BYTES:], dtype="<u2").tolist() == list(range(7))


def _corrupt(path, word, value):
    raw = bytearray(path.read_bytes())
    raw[word * 4 : word * 4 + 4] = np.int32(value).tobytes()
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: _corrupt(p, 0, 12345), "bad magic"),
        (lambda p: _corrupt(p, 1, 2), "unsupported shard version"),
        (lambda p: _corrupt(p, 2, 11), "header says 11 tokens"),
        (lambda p: p.write_bytes(p.read_bytes()[:-2]), "header says 10 tokens"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\0\0"), "header says 10 tokens"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "too short"),
        (lambda p: p.write_bytes(b""), "too short"),
        (lambda p: _corrupt(p, 2, -1), "header says -1 tokens, a negative count"),
        (lambda p: _corrupt(p, 2, -(2**31)), "negative count"),
        (lambda p: (p.unlink(), p.mkdir()), "cannot read shard: not a regular file"),
        (lambda p: (p.unlink(), os.mkfifo(p)), "cannot read shard: not a regular file"),  # fails at once, no hang
    ],
)
def test_corrupt_shard_is_refused_with_its_path(tmp_path, damage, message):
    path = tmp_path / "bad.bin"
    write_shard(path, np.arange(10))
    damage(path)
    with pytest.raises(ShardFormatError, match=message) as error:
        read_shard(path)
    assert str(path) in str(error.value)


def test_missing_shard_is_a_clear_error(tmp_path):
    for reader in (read_shard_header, read_shard):
        with pytest.raises(ShardFormatError, match="nope.bin: cannot read shard: No such file"):
            reader(tmp_path / "nope.bin")


def test_shard_errors_are_data_errors_and_value_errors(tmp_path):
    """The one reader the judge and the trainer can share: callers catch DataError (data/) or ValueError."""
    path = tmp_path / "bad.bin"
    path.write_bytes(b"\0" * HEADER_BYTES)
    with pytest.raises(DataError) as error:
        read_shard(path)
    assert isinstance(error.value, ValueError) and str(error.value).startswith(f"{path}: bad magic 0")


def test_large_shard_round_trip_reads_past_the_buffered_header(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 65536, size=300_000, dtype=np.uint16)
    write_shard(tmp_path / "big.bin", tokens)
    back = read_shard(tmp_path / "big.bin")
    assert back.flags.writeable and np.array_equal(back, tokens)
    assert read_shard_header(tmp_path / "big.bin") == tokens.size


def test_sha256_file_matches_hashlib(tmp_path):
    for size in (0, 1, (1 << 22) + 3):
        data = np.random.default_rng(size).bytes(size)
        (tmp_path / "f").write_bytes(data)
        assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("tokens", [[-1], [65536], [[1, 2]], [0.5]])
def test_write_shard_refuses_tokens_that_do_not_fit(tmp_path, tokens):
    with pytest.raises(ValueError):
        write_shard(tmp_path / "s.bin", np.array(tokens))


def test_header_magic_constant():
    assert SHARD_MAGIC == 20240520


# --- manifest ---


def test_manifest_json_is_canonical(tmp_path):
    manifest = {"schema": 1, "b": [1, 2], "a": {"y": 1, "x": 0.5}}
    write_manifest(tmp_path, manifest)
    raw = (tmp_path / "manifest.json").read_bytes()
    assert raw.endswith(b"}\n")
    assert raw == canonical_json(json.loads(raw))
    assert list(json.loads(raw)) == sorted(manifest)
    assert load_manifest(tmp_path) == manifest


def test_load_manifest_errors(tmp_path):
    with pytest.raises(DataError, match="not a prepared dataset"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"schema": 99}')
    with pytest.raises(DataError, match="unsupported manifest schema"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(DataError, match="cannot read manifest"):
        load_manifest(tmp_path)


# --- bytes per token ---


def test_byte_tokenizer_table(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(canonical_json(BYTE_TOKENIZER_SPEC))
    table = bytes_per_token(path)
    assert table.dtype == np.int64
    assert table.tolist() == [1] * 256 + [0]
    assert not leading_space_is_free(path)
    text = "héllo\n".encode()
    tokens = np.array([256, *text], dtype=np.uint16)
    assert val_bytes_from_tokens(tokens, path) == len(text)


def test_byte_tokenizer_file_must_match_the_contract(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"type": "byte", "vocab_size": 300, "bos_id": 256}')
    with pytest.raises(DataError, match="not the contract's byte tokenizer"):
        bytes_per_token(path)


def _train_small_model(add_dummy_prefix):
    words = ["the", "king", "queen", "lord", "speak", "now", "thee", "thou", "art", "good", "ÿé"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, 40)) + "\n" for _ in range(60)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="bpe",
        vocab_size=300,
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=add_dummy_prefix,
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


@pytest.mark.parametrize("add_dummy_prefix", [False, True])
def test_sentencepiece_table_follows_the_rule(tmp_path, add_dummy_prefix):
    path = tmp_path / "tokenizer.model"
    path.write_bytes(_train_small_model(add_dummy_prefix))
    sp = spm.SentencePieceProcessor(model_file=str(path))
    table = bytes_per_token(path)
    assert table[:3].tolist() == [0, 0, 0]  # <unk>, <s>, </s>
    assert table[3:259].tolist() == [1] * 256  # <0x00>..<0xFF>
    for i in range(259, sp.get_piece_size()):
        assert table[i] == len(sp.id_to_piece(i).replace("▁", " ").encode())
    assert leading_space_is_free(path) is add_dummy_prefix
    flags = leading_space_flags(path)
    assert not flags[:259].any()
    # Every document's bytes are recovered exactly from its tokens, BOS and dummy prefix included.
    docs = ["the king speak\nnow", "  two leading spaces", "thou 中文 art", "x"]
    if add_dummy_prefix:
        docs[1] = "no leading space here"  # a dummy prefix tokenizer cannot tell " x" from "x" at the start
    tokens = np.concatenate([np.array([1, *sp.encode(d)], dtype=np.uint16) for d in docs])
    assert val_bytes_from_tokens(tokens, path) == sum(len(d.encode()) for d in docs)
    naive = target_bytes(tokens, table, bos_id=1)
    assert naive - val_bytes_from_tokens(tokens, path) == (len(docs) if add_dummy_prefix else 0)


# --- overlap ---


def test_shingle_hashes_identify_equal_windows():
    data = b"abcdefghij" * 12
    hashes = shingle_hashes(data, 50)
    assert hashes.size == len(data) - 49
    assert hashes[0] == hashes[10] == hashes[20]  # same 50 bytes, period 10
    assert len(set(hashes[:10].tolist())) == 10
    assert shingle_hashes(b"short", 50).size == 0


def test_overlap_report_counts_leaked_windows():
    rng = np.random.default_rng(1)
    train = [rng.integers(97, 123, 2000, dtype=np.uint8).tobytes() for _ in range(3)]
    val = [rng.integers(97, 123, 500, dtype=np.uint8).tobytes(), train[1][100:300]]
    report = overlap_report(train, val, threshold=0.01)
    assert report["val_shingles"] == (500 - 49) + (200 - 49)
    assert report["val_shingles_in_train"] == 200 - 49
    assert report["fraction"] == pytest.approx(151 / 602)
    assert report["ok"] is False
    clean = overlap_report(train, val[:1])
    assert clean["val_shingles_in_train"] == 0 and clean["ok"] is True
    assert overlap_report([], [b"x" * 10])["fraction"] == 0.0


# --- losslessness of the trained tokenizer on arbitrary text ---


@functools.cache
def _identity_tokenizer_path(folder: str) -> Path:
    texts = ["Thou art the king, my lord.\n\n  Good night, sweet prince!\t1234 café\n" * 3 + str(i) for i in range(50)]
    path = Path(folder) / "tokenizer.model"
    path.write_bytes(train_sentencepiece(texts, 320))  # the pipeline's own settings
    return path


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\u2581"), max_size=80))
def test_trained_tokenizer_round_trips_any_text(tmp_path_factory, text):
    path = _identity_tokenizer_path(str(tmp_path_factory.getbasetemp()))
    tokenizer = SentencePieceTokenizer(path.read_bytes())
    [tokens] = tokenizer.encode([text])
    assert tokenizer.decode([tokens]) == [text]
    with_bos = np.concatenate([[tokenizer.bos_id], tokens]).astype(np.uint16)
    assert val_bytes_from_tokens(with_bos, path) == len(text.encode("utf-8"))

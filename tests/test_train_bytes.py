"""train_gpt.py's bytes-per-token accounting (docs/CONTRACTS.md section 1) on real SentencePiece models trained here.

Each known bug class has a test: a leading "▁" counted twice, a byte-fallback piece counted as the 3 bytes of
U+FFFD, a vocabulary without a standalone "▁" (spaces become byte-fallback tokens), and the dummy prefix.
The invariant checked everywhere: for any document, the bytes of the targets of [BOS] + encode(doc) equal
len(doc.encode("utf-8")).
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sentencepiece import sentencepiece_model_pb2 as pb

import train_gpt

REPO = Path(__file__).resolve().parents[1]
WORDS = "the king queen lord lady sword crown love death night day speak thou thee hath doth my good sir".split()


def corpus(seed: int, n_lines: int = 300, sep: str = " ") -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 9))]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        lines.append(sep.join(words) + rng.choice([".", ",", "!", "?", ";"]))
    return lines


def train_sp(tmp: Path, name: str, lines: list[str], vocab_size: int = 320, **overrides) -> Path:
    settings_ = dict(model_type="bpe", vocab_size=vocab_size, normalization_rule_name="identity",
                     add_dummy_prefix=False, remove_extra_whitespaces=False, byte_fallback=True, unk_id=0, bos_id=1,
                     eos_id=2, pad_id=-1, character_coverage=1.0, num_threads=1, minloglevel=2)
    settings_.update(overrides)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, **settings_)
    path = tmp / f"{name}.model"
    path.write_bytes(buf.getvalue())
    return path


def counted_bytes(model_path: Path, text: str) -> int:
    """Bytes the trainer's accounting gives the targets of [BOS] + encode(text)."""
    table, leading, dummy = train_gpt.build_byte_table(model_path)
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    tokens = torch.tensor([sp.bos_id()] + sp.encode(text))
    nbytes = train_gpt.target_bytes(tokens, torch.from_numpy(table), torch.from_numpy(leading), dummy, sp.bos_id())
    return int(nbytes.sum())


def pieces(model_path: Path, text: str) -> list[str]:
    return spm.SentencePieceProcessor(model_file=str(model_path)).encode(text, out_type=str)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("sp")
    lines = corpus(0)
    out = {
        "plain": train_sp(tmp, "plain", lines),
        "dummy": train_sp(tmp, "dummy", lines, add_dummy_prefix=True),
    }
    # A vocabulary without any "▁": whitespace is not escaped, so a space is the character " ", and that character is
    # left out of the vocabulary (spaces are rare in the training text), so every space is the byte piece <0x20>.
    rare = corpus(1, sep="") + ["a b"]
    path = train_sp(tmp, "nospace_raw", rare, character_coverage=0.999)
    proto = pb.ModelProto()
    proto.ParseFromString(path.read_bytes())
    proto.normalizer_spec.escape_whitespaces = False
    keep = [p for p in proto.pieces if "\u2581" not in p.piece and p.piece != " "]
    del proto.pieces[:]
    proto.pieces.extend(keep)
    out["nospace"] = tmp / "nospace.model"
    out["nospace"].write_bytes(proto.SerializeToString())
    return out


def test_special_tokens_count_zero_and_ids_follow_the_contract(models):
    table, leading, dummy = train_gpt.build_byte_table(models["plain"])
    sp = spm.SentencePieceProcessor(model_file=str(models["plain"]))
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
    assert table[:3].tolist() == [0, 0, 0]
    assert table.dtype == np.int64 and len(table) == sp.get_piece_size()
    assert not dummy and not leading[:259].any()


def test_leading_space_is_one_byte_not_counted_twice(models):
    path = models["plain"]
    table, leading, _ = train_gpt.build_byte_table(path)
    sp = spm.SentencePieceProcessor(model_file=str(path))
    for i in range(259, sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        assert table[i] == len(piece.replace("\u2581", " ").encode()), piece
        assert leading[i] == piece.startswith("\u2581")
    assert table[sp.piece_to_id("\u2581")] == 1
    text = "the king  hath my sword, good sir.  Thou   speak!"
    assert any(p.startswith("\u2581") and len(p) > 1 for p in pieces(path, text))
    assert counted_bytes(path, text) == len(text.encode())


def test_byte_fallback_pieces_count_one_byte_each(models):
    path = models["plain"]
    table, _, _ = train_gpt.build_byte_table(path)
    sp = spm.SentencePieceProcessor(model_file=str(path))
    assert all(table[sp.piece_to_id(f"<0x{b:02X}>")] == 1 for b in range(256))
    text = "the café of 日本 hath naïve ✓ kings"  # none of these characters is in the training text
    used = pieces(path, text)
    assert sum(p.startswith("<0x") for p in used) >= 3 + 6 + 2 + 3
    assert sp.decode(sp.encode(text)) == text
    assert counted_bytes(path, text) == len(text.encode())


def test_vocabulary_without_standalone_space(models):
    path = models["nospace"]
    sp = spm.SentencePieceProcessor(model_file=str(path))
    vocab = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert "\u2581" not in vocab and " " not in vocab
    text = "the king  hath my sword, good sir. thou speak"
    used = pieces(path, text)
    assert used.count("<0x20>") == text.count(" ")  # every space is a byte-fallback token
    assert sp.decode(sp.encode(text)) == text
    table, _, _ = train_gpt.build_byte_table(path)
    assert table[sp.piece_to_id("<0x20>")] == 1
    assert counted_bytes(path, text) == len(text.encode())


def test_dummy_prefix_leading_space_after_bos_is_free(models):
    path = models["dummy"]
    _, _, dummy = train_gpt.build_byte_table(path)
    assert dummy
    for text in ["the king hath", " the king", "Thou speak, good sir.", "日本 the"]:
        assert pieces(path, text)[0].startswith("\u2581")  # the inserted prefix
        assert counted_bytes(path, text) == len(text.encode()), text
    # Several documents in one stream: each BOS starts a document with its own free prefix.
    sp = spm.SentencePieceProcessor(model_file=str(path))
    docs = ["the king", "my lady speak", " good sir"]
    stream = torch.tensor([t for d in docs for t in [sp.bos_id()] + sp.encode(d)])
    table, leading, dummy = train_gpt.build_byte_table(path)
    nbytes = train_gpt.target_bytes(stream, torch.from_numpy(table), torch.from_numpy(leading), dummy, sp.bos_id())
    assert int(nbytes.sum()) == sum(len(d.encode()) for d in docs)


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("thekingsqu ,.!\n") + ["é", "日", " "]), max_size=60))
def test_any_text_round_trips_its_byte_count(models, text):
    for name in ("plain", "dummy", "nospace"):
        path = models[name]
        sp = spm.SentencePieceProcessor(model_file=str(path))
        if sp.decode(sp.encode(text)) != text:  # the dummy-prefix model drops a leading "▁" on decode
            assert name == "dummy"
            continue
        assert counted_bytes(path, text) == len(text.encode()), (name, text)


def test_byte_tokenizer_json(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"type": "byte", "vocab_size": 257, "bos_id": 256}))
    table, leading, dummy = train_gpt.build_byte_table(path)
    assert table.tolist() == [1] * 256 + [0] and not leading.any() and not dummy
    assert train_gpt.tokenizer_bos_id(path) == 256


def test_byte_table_cli_matches_the_function(models, tmp_path):
    for name in ("plain", "dummy"):
        out = tmp_path / f"{name}.npy"
        subprocess.run([sys.executable, str(REPO / "train_gpt.py"), "byte-table", "--tokenizer", str(models[name]),
                        "--out", str(out)], check=True, cwd=tmp_path, timeout=120)
        table = np.load(out, allow_pickle=False)
        assert table.dtype == np.int64
        assert np.array_equal(table, train_gpt.build_byte_table(models[name])[0])
        flags = json.loads(out.with_suffix(".json").read_text())
        assert flags == {"leading_space_after_bos_is_free": name == "dummy"}

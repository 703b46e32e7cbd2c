"""Fixtures for the tokenizer audit tests: real small SentencePiece models, datasets and records built in tmp.

No tests live here; the test_tokenizer_audit*.py modules import these builders and fixtures.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.recordkit import cpu_track_toml

SPACE_MARK = "\u2581"
TRAIN_WORDS = "the and of to thee thou art love king lord sweet night day come go well café naïve".split()

# Validation text: characters the models never saw (Cyrillic, Greek, an emoji) force byte fallback, some of it
# partial multi-byte; runs of spaces, indentation, a leading space and capitals exercise whitespace handling.
VAL_TEXTS = (
    "the king and the lord come to thee.\n    sweet night, well day; Жизнь Ωmega 😀 café\n",
    " thou art love;  go   well\nthe night of the king\n\tday\n",
    "KING LORD: the sweet day of the night. naïve ж\n",
)


def training_corpus(seed: int = 1, lines: int = 300) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        indent = "    " * (i % 3)
        out.append(indent + " ".join(rng.choice(TRAIN_WORDS) for _ in range(8)) + rng.choice([".", ",", ";", "!"]))
    return "\n".join(out) + "\n"


LOSSLESS = dict(normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
                allow_whitespace_only_pieces=True)
LOSSY = dict(normalization_rule_name="nmt_nfkc", add_dummy_prefix=True, remove_extra_whitespaces=True)


def train_model(path: Path, *, vocab_size: int = 330, byte_fallback: bool = True, **settings) -> Path:
    """Train a tiny BPE SentencePiece model into `path` (ids as the contract: unk 0, BOS 1, EOS 2, no pad)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([training_corpus()]), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=byte_fallback, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        max_sentence_length=1 << 20, minloglevel=2, num_threads=1, **settings,
    )
    path.write_bytes(model.getvalue())
    return path


def remove_space_piece(source: Path, target: Path) -> Path:
    """The same model with its standalone `▁` piece deleted from the proto (the public competition's C1 vocab)."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto.FromString(source.read_bytes())
    index = next(i for i, p in enumerate(proto.pieces) if p.piece == SPACE_MARK)
    del proto.pieces[index]
    target.write_bytes(proto.SerializeToString())
    return target


def write_byte_tokenizer(path: Path) -> Path:
    path.write_text(json.dumps({"type": "byte", "vocab_size": 257, "bos_id": 256}))
    return path


_BUILT_MODELS: dict[str, Path] = {}


def build_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tokenizer the tests use, trained once per test session (each test module's `models` fixture)."""
    if _BUILT_MODELS:
        return _BUILT_MODELS
    folder = tmp_path_factory.mktemp("sp_models")
    lossless = train_model(folder / "lossless.model", **LOSSLESS)
    _BUILT_MODELS.update({
        "lossless": lossless,
        # The data pipeline's settings: no whitespace-only pieces, so encoding may be split before spaces.
        "plain": train_model(folder / "plain.model", **{**LOSSLESS, "allow_whitespace_only_pieces": False}),
        "lossy": train_model(folder / "lossy.model", **LOSSY),
        "dummy": train_model(folder / "dummy.model", **{**LOSSLESS, "add_dummy_prefix": True}),
        "casefold": train_model(folder / "casefold.model", **{**LOSSLESS, "normalization_rule_name": "nmt_nfkc_cf"}),
        "no_fallback": train_model(folder / "no_fallback.model", vocab_size=100, byte_fallback=False, **LOSSLESS),
        "nospace": remove_space_piece(lossless, folder / "nospace.model"),
        "byte": write_byte_tokenizer(folder / "tokenizer.json"),
    })
    return _BUILT_MODELS


# --- datasets and records -------------------------------------------------------------------------------------

TRACK_ID = "track_tiny"
DATASET = "tiny_sp"

TRACKS_TOML = cpu_track_toml(TRACK_ID, title="tiny test track", dataset=DATASET, tokenizer="sp330", min_seeds=1,
                             train_cap_s=60)


def build_dataset(root: Path, tokenizer: Path, texts=VAL_TEXTS, name: str = DATASET) -> Path:
    """A dataset folder as data/prepare.py writes it, reduced to what the audit reads (no shards)."""
    folder = root / name
    (folder / "val_docs").mkdir(parents=True)
    tokenizer_file = "tokenizer.json" if tokenizer.suffix == ".json" else "tokenizer.model"
    (folder / tokenizer_file).write_bytes(tokenizer.read_bytes())
    documents = []
    for i, text in enumerate(texts):
        data = text.encode("utf-8")
        doc_name = f"doc{i:02d}.txt"
        (folder / "val_docs" / doc_name).write_bytes(data)
        documents.append({"name": doc_name, "split": "val", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    documents.append({"name": "train0.txt", "split": "train", "bytes": 5, "sha256": "0" * 64})
    manifest = {
        "schema": 1, "dataset": name, "documents": documents,
        "tokenizer": {"kind": "sentencepiece-bpe", "file": tokenizer_file,
                      "sha256": hashlib.sha256(tokenizer.read_bytes()).hexdigest()},
        "val_bytes": sum(d["bytes"] for d in documents if d["split"] == "val"),
        "val_documents": len(texts),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


# The body of a record's byte-table: builds the contract's table, then `BUG` plants one of the public bugs.
BYTE_TABLE_SCRIPT = '''\
import json, sys
import numpy as np

def contract_table(path):
    if path.endswith(".json"):
        table = np.zeros(257, dtype=np.int64); table[:256] = 1
        return table, np.zeros(257, bool), [bytes([i]) for i in range(256)] + [b""], False
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2
    proto = sentencepiece_model_pb2.ModelProto.FromString(open(path, "rb").read())
    sp = spm.SentencePieceProcessor(model_file=path)
    V = sp.get_piece_size()
    table, leading, pieces = np.zeros(V, np.int64), np.zeros(V, bool), []
    for i in range(V):
        piece = sp.id_to_piece(i)
        pieces.append(piece)
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        if sp.is_byte(i):
            table[i] = 1
            continue
        table[i] = len(piece.replace("\\u2581", " ").encode())
        leading[i] = piece.startswith("\\u2581")
    return table, leading, pieces, bool(proto.normalizer_spec.add_dummy_prefix)

if sys.argv[1:2] == ["byte-table"]:
    tokenizer, out = sys.argv[sys.argv.index("--tokenizer") + 1], sys.argv[sys.argv.index("--out") + 1]
    table, leading, pieces, dummy = contract_table(tokenizer)
    is_byte = np.array([isinstance(p, str) and p.startswith("<0x") and len(p) == 6 for p in pieces] + [False] * (len(table) - len(pieces)))
    free = dummy
{bug}
    np.save(out, table)
    json.dump({{"leading_space_after_bos_is_free": bool(free)}}, open(out[:-4] + ".json", "w"))
else:
    print("training would start here")
'''

BUGS = {
    "correct": "",
    "leading_space_double": "table[leading] += 1",
    "byte_as_fffd": "table[is_byte] = 3",
    "public_space_rule": "table = np.array([1 + len(p[1:].encode()) if lead else t for p, lead, t in zip(pieces, leading, table)])",
    "control_counted": "table[1] = 1",
    "partial_utf8_ignore": "table[is_byte] = [len(bytes([int(p[3:5], 16)]).decode('utf-8', 'ignore')) for p in np.array(pieces)[is_byte]]",
    "dummy_not_free": "free = False",
}


def byte_table_script(bug: str) -> str:
    code = textwrap.indent(BUGS.get(bug, bug), "    ") if BUGS.get(bug, bug) else "    pass"
    return BYTE_TABLE_SCRIPT.format(bug=code)


def build_repo(root: Path, *, baseline: str | None = "correct") -> Path:
    """records/tracks.toml plus the repository's own train_gpt.py (the baseline's byte-table)."""
    (root / "records" / TRACK_ID).mkdir(parents=True)
    (root / "records" / "tracks.toml").write_text(TRACKS_TOML)
    if baseline is not None:
        (root / "train_gpt.py").write_text(byte_table_script(baseline))
    return root


def build_record(repo: Path, name: str, script: str | None, *, val_bpb: float | None = 1.25,
                 tokenizer: Path | None = None, logs: dict[str, str] | None = None) -> Path:
    folder = repo / "records" / TRACK_ID / name
    folder.mkdir(parents=True)
    if script is not None:
        (folder / "train_gpt.py").write_text(script)
    submission = {"schema": 1, "name": name, "track": TRACK_ID, "val_bpb": val_bpb}
    (folder / "submission.json").write_text(json.dumps(submission))
    (folder / "README.md").write_text(f"# {name}\n")
    if tokenizer is not None:
        (folder / ("tokenizer.json" if tokenizer.suffix == ".json" else "tokenizer.model")).write_bytes(tokenizer.read_bytes())
    for log_name, text in (logs or {}).items():
        (folder / log_name).write_text(text)
    return folder


def log_text(val_tokens: int, val_bytes: int) -> str:
    return "print('code')\n" + "\n" + "=" * 100 + "\n" + f"run_id:x seed:1\nval_tokens:{val_tokens} val_bytes:{val_bytes}\n"


def save_table(path: Path, values, flag: bool | None = None) -> Path:
    np.save(path, np.asarray(values), allow_pickle=False)
    if flag is not None:
        path.with_suffix(".json").write_text(json.dumps({"leading_space_after_bos_is_free": flag}))
    return path

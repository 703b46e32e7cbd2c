"""Fixtures for the probe tests: a tiny byte-tokenized dataset (contract §1) and records whose `train_gpt.py`
implements the `score` command (contract §4) with a fixed bigram table shipped as a plain .npy artifact.

Each scorer is a few lines of numpy (`SCORERS`): an honest one and one per failure the probes must catch. The
claims written into a record come from a stand-in trainer (`claimed_bpb`) that scores each evaluation window on
its own, at its exact length, and divides by the byte count it believes in: so a claim is honest for a causal,
batch-independent scorer and only the planted defect can make the judge disagree.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import textwrap
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from tests.recordkit import TRACKS_TOML, make_record, make_repo_tree, repo_env

DATASET = "tiny_byte"
VOCAB = 257  # byte tokenizer: ids 0..255 are bytes, 256 is BOS
BOS = 256
SEQ_LEN = 64
WORDS = "the quick brown fox jumps over a lazy dog while my cat sat on the mat to be or not".split()

# The scorer script around a `score(table, tokens)` function; the body is what each test plants.
SCRIPT_TEMPLATE = '''\
"""A tiny record scorer for the probe tests: a bigram table of log-probabilities in a plain .npy artifact."""

import argparse
import sys

import numpy as np

BOS = {bos}

{score}

def main(argv):
    if not argv or argv[0] != "score":
        print("usage: train_gpt.py score --artifact A --tokens IN --out OUT", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="train_gpt.py score")
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    table = np.load(args.artifact, allow_pickle=False)
    tokens = np.load(args.tokens, allow_pickle=False)
    np.save(args.out, score(table, tokens), allow_pickle=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''

SCORERS: dict[str, str] = {
    # Honest: position t's distribution is the bigram row of token t.
    "honest": '''
def score(table, tokens):
    return table[tokens].astype(np.float32)
''',
    # B1: a 4-bucket hashed cache mixed in for every token; each token gets its bucket's share, so the "mixture"
    # sums to about V/8 over the vocabulary. Causal (the cache holds tokens 0..t only); only the gold token's
    # value is ever used by its own trainer, which is why the bug hid.
    "unnormalized": '''
def score(table, tokens):
    probs = np.exp(table[tokens].astype(np.float64))
    buckets = np.arange(table.shape[1]) % 4
    out = np.empty(probs.shape, dtype=np.float32)
    for b in range(tokens.shape[0]):
        counts = np.ones(4)
        for t in range(tokens.shape[1]):
            counts[tokens[b, t] % 4] += 1
            out[b, t] = np.log(0.5 * probs[b, t] + 0.5 * counts[buckets] / counts.sum())
    return out
''',
    # A5-like look-ahead: position t mixes in the token it is predicting (token t+1). Normalized.
    "lookahead": '''
def score(table, tokens):
    probs = np.exp(table[tokens].astype(np.float64))
    rows, cols = np.meshgrid(np.arange(tokens.shape[0]), np.arange(tokens.shape[1] - 1), indexing="ij")
    probs[:, :-1] *= 0.7
    probs[rows, cols, tokens[:, 1:]] += 0.3
    return np.log(probs).astype(np.float32)
''',
    # A7: the leak happens only at a document boundary: the BOS position reads the next document's first token.
    "boundary_leak": '''
def score(table, tokens):
    probs = np.exp(table[tokens].astype(np.float64))
    for b, t in zip(*np.nonzero(tokens[:, :-1] == BOS)):
        probs[b, t] *= 0.5
        probs[b, t, tokens[b, t + 1]] += 0.5
    return np.log(probs).astype(np.float32)
''',
    # Streaming "test-time adaptation" across rows: row b mixes in the unigram counts of rows 0..b-1. Causal
    # within a row, but a row's output depends on what else is in the batch.
    "batch_dependent": '''
def score(table, tokens):
    probs = np.exp(table[tokens].astype(np.float64))
    counts = np.ones(table.shape[1])
    for b in range(tokens.shape[0]):
        probs[b] = 0.8 * probs[b] + 0.2 * counts / counts.sum()
        counts += np.bincount(tokens[b], minlength=table.shape[1])
    return np.log(probs).astype(np.float32)
''',
    "nan": '''
def score(table, tokens):
    out = table[tokens].astype(np.float32)
    out[0, 1, 5] = np.nan
    return out
''',
    "wrong_shape": '''
def score(table, tokens):
    return table[tokens][:, :, :-1].astype(np.float32)
''',
    "float16": '''
def score(table, tokens):
    return table[tokens].astype(np.float16)
''',
}


def scorer_script(name_or_source: str) -> str:
    body = SCORERS.get(name_or_source, name_or_source)
    return SCRIPT_TEMPLATE.format(bos=BOS, score=textwrap.dedent(body).strip() + "\n")


def scorer_function(name_or_source: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The `score` function of a test scorer, for the stand-in trainer (test code, not a record's)."""
    namespace: dict = {"np": np, "BOS": BOS}
    exec(textwrap.dedent(SCORERS.get(name_or_source, name_or_source)), namespace)
    return namespace["score"]


# --- the dataset --------------------------------------------------------------------------------------------------


def write_shard(path: Path, tokens: Iterable[int]) -> None:
    array = np.asarray(list(tokens), dtype="<u2")
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(array))
    path.write_bytes(header.tobytes() + array.tobytes())


def documents(count: int, words: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [(" ".join(rng.choice(WORDS, words)) + "\n").encode() for _ in range(count)]


def encode(docs: Iterable[bytes]) -> np.ndarray:
    out: list[int] = []
    for doc in docs:
        out += [BOS, *doc]
    return np.asarray(out, dtype=np.int64)


def make_dataset(datasets_root: Path, *, val_docs: int = 4, words: int = 150, name: str = DATASET,
                 train_docs: int = 12) -> Path:
    """`<datasets_root>/<name>/`: manifest, byte tokenizer, one train and one val shard, raw val documents."""
    folder = datasets_root / name
    (folder / "val_docs").mkdir(parents=True, exist_ok=True)
    train, val = documents(train_docs, words, seed=1), documents(val_docs, words, seed=2)
    train_tokens, val_tokens = encode(train), encode(val)
    write_shard(folder / "train_000000.bin", train_tokens)
    write_shard(folder / "val_000000.bin", val_tokens)
    (folder / "tokenizer.json").write_text(json.dumps({"type": "byte", "vocab_size": VOCAB, "bos_id": BOS}))
    for index, doc in enumerate(val):
        (folder / "val_docs" / f"doc{index}.txt").write_bytes(doc)
    def sha(file: str) -> str:
        return hashlib.sha256((folder / file).read_bytes()).hexdigest()

    manifest = {
        "schema": 1, "dataset": name,
        "tokenizer": {"kind": "byte", "file": "tokenizer.json", "sha256": sha("tokenizer.json"), "vocab_size": VOCAB,
                      "bos_id": BOS},
        "shards": {"train": [{"file": "train_000000.bin", "tokens": len(train_tokens), "sha256": sha("train_000000.bin")}],
                   "val": [{"file": "val_000000.bin", "tokens": len(val_tokens), "sha256": sha("val_000000.bin")}]},
        "train_tokens": len(train_tokens), "val_tokens": len(val_tokens),
        "train_bytes": sum(map(len, train)), "val_bytes": sum(map(len, val)), "val_documents": len(val),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


def val_stream(dataset: Path) -> np.ndarray:
    return np.fromfile(dataset / "val_000000.bin", dtype="<u2", offset=1024).astype(np.int64)


def bigram_table(dataset: Path, smoothing: float) -> np.ndarray:
    """A 'trained' model: add-`smoothing` bigram log-probabilities from the train shard, float32 [V, V]."""
    train = np.fromfile(dataset / "train_000000.bin", dtype="<u2", offset=1024).astype(np.int64)
    counts = np.full((VOCAB, VOCAB), smoothing)
    np.add.at(counts, (train[:-1], train[1:]), 1.0)
    return np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def claimed_bpb(score: Callable, table: np.ndarray, stream: np.ndarray, seq_len: int, denominator: int,
                stride: int = 0) -> float:
    """The stand-in trainer's evaluation: each window scored alone at its exact length, gold log-probs summed over
    the targets no earlier window scored (windows every `stride` tokens; 0: consecutive)."""
    total, done, start, n_targets = 0.0, 0, 0, len(stream) - 1
    while done < n_targets:
        length = min(seq_len, n_targets - start)
        logprobs = np.asarray(score(table, stream[None, start : start + length]), dtype=np.float64)[0]
        gold = logprobs[np.arange(length), stream[start + 1 : start + 1 + length]]
        total += gold[done - start :].sum()
        done = start + length
        start += stride or seq_len
    return -total / math.log(2) / denominator


# --- a repository tree with one record ----------------------------------------------------------------------------


def make_tree(tmp: Path, monkeypatch=None) -> tuple[Path, Path]:
    """records/tracks.toml whose CPU track uses the tiny dataset, and that dataset; returns (root, dataset)."""
    root = make_repo_tree(tmp, tracks_toml=TRACKS_TOML.replace('"shakespeare_sp1024"', f'"{DATASET}"'), datasets=())
    dataset = make_dataset(root / "data" / "datasets")
    if monkeypatch is not None:
        for key, value in repo_env(root).items():
            monkeypatch.setenv(key, value)
    return root, dataset


def make_scorer_record(root: Path, dataset: Path, scorer: str = "honest", *, name: str = "2026-02-01_bigram",
                       seeds: tuple[int, ...] = (42,), artifacts: Iterable[int] | None = None,
                       script: str | None = None, seq_len: int | None = SEQ_LEN,
                       denominator_extra: int = 0, claim_scorer: str | None = None,
                       extra_files: Mapping[str, bytes | str] | None = None,
                       log_val_bytes: int | None = None, stride: int = 0) -> Path:
    """A record whose train_gpt.py scores with `scorer`; one bigram artifact per seed in `artifacts` (default:
    every seed). Claims as the stand-in trainer computes them (with `claim_scorer`, default `scorer`), divided by
    val_bytes + `denominator_extra`, over windows every `stride` tokens (named in the logs when not 0)."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    stream = val_stream(dataset)
    score = scorer_function(claim_scorer or scorer)
    files: dict[str, bytes | str] = dict(extra_files or {})
    bpbs = []
    for index, seed in enumerate(seeds):
        table = bigram_table(dataset, smoothing=0.1 * (index + 1))
        if artifacts is None or seed in artifacts:
            files[f"final_model_seed{seed}.npy"] = npy_bytes(table)
        bpbs.append(claimed_bpb(score, table, stream, seq_len or SEQ_LEN, manifest["val_bytes"] + denominator_extra,
                                stride))
    overrides = {seed: {"val_bytes": log_val_bytes} for seed in seeds} if log_val_bytes is not None else None
    folder = make_record(root, name=name, seeds=seeds, bpbs=bpbs, script=script or scorer_script(scorer),
                         extra_files=files, dataset=DATASET, log_overrides=overrides)
    if seq_len is not None:
        for log in folder.glob("train_seed*.log"):
            text = log.read_text()
            names = f"TRAIN_SEQ_LEN={seq_len} " + (f"EVAL_STRIDE={stride} " if stride else "")
            log.write_text(text.replace("hyperparameters: ", f"hyperparameters: {names}", 1))
    return folder

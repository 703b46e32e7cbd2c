"""docs/FAILURES.md rows caught by `verify probes` (normalization, causality, rescore): one planted scorer per row.

Each record's train_gpt.py implements the scoring entry point (docs/CONTRACTS.md §4) with a few lines of numpy
around a bigram model shipped as an .npz artifact, on a tiny SentencePiece dataset built here (multi-byte pieces,
so bytes and tokens are different alphabets, as on the real tracks). The judge runs every scorer in the sandbox
through `probe_record`; the tests only build the record and read the verdict.

A record's claim is what its own (planted) evaluation would print: `claim_bpb` runs the same scorer source in this
test process (test code, never a record's) window by window, exactly as the baseline evaluates, unless the row
is about the evaluation itself (test-time training, best of passes, partial or clamped scoring), in which case
the planted evaluation is written out in the test.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.recordkit import TRACKS_TOML, make_record, make_repo_tree
from tests.test_probes_kit import SCRIPT_TEMPLATE, write_shard
from tests.test_tokenizer_audit_kit import LOSSLESS, TRAIN_WORDS, train_model
from tools.verify.probes import probe_record

DATASET = "catalog_sp"
SEQ_LEN = 48
BOS = 1  # contract §1: SentencePiece ids <unk>=0, <s>=1, </s>=2


# --- the dataset: a real tiny SentencePiece BPE, shards and manifest (contract §1) -----------------------------------


def documents(count: int, words: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(count):
        lines = [" ".join(rng.choice(TRAIN_WORDS, 10)).capitalize() + "." for _ in range(words // 10)]
        docs.append(("\n".join(lines) + "\n").encode())
    return docs


def piece_byte_strings(sp) -> list[bytes]:
    """What each id stands for: control/unknown nothing, <0xNN> one byte, else the piece with ▁ as a space."""
    strings = []
    for token in range(sp.get_piece_size()):
        piece = sp.id_to_piece(token)
        if sp.is_control(token) or sp.is_unknown(token) or sp.is_unused(token):
            strings.append(b"")
        elif sp.is_byte(token):
            strings.append(bytes([int(piece[3:5], 16)]))
        else:
            strings.append(piece.replace("\u2581", " ").encode())
    return strings


def bigram_logprobs(stream: np.ndarray, vocab: int, smoothing: float) -> np.ndarray:
    counts = np.full((vocab, vocab), smoothing)
    np.add.at(counts, (stream[:-1], stream[1:]), 1.0)
    return np.log(counts / counts.sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class World:
    """The repository tree, its dataset and what the tests derive from it."""

    root: Path
    dataset: Path
    val: np.ndarray  # the validation stream, BOS included
    train: np.ndarray
    vocab: int
    val_bytes: int
    piece_bytes: list[bytes]
    model: dict[str, np.ndarray]  # the shipped artifact's arrays

    @property
    def targets_bytes(self) -> np.ndarray:
        """Bytes each scored target stands for (the judge's denominator, summed, is val_bytes)."""
        return np.array([len(self.piece_bytes[t]) for t in self.val[1:]])


def write_manifest(folder: Path, train: np.ndarray, val: np.ndarray, train_docs: list[bytes], val_docs: list[bytes],
                   vocab: int) -> dict:
    def sha(name: str) -> str:
        return hashlib.sha256((folder / name).read_bytes()).hexdigest()

    manifest = {
        "schema": 1, "dataset": DATASET,
        "documents": [{"name": f"doc{i}.txt", "split": "val", "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                      for i, d in enumerate(val_docs)],
        "tokenizer": {"kind": "sentencepiece-bpe", "file": "tokenizer.model", "sha256": sha("tokenizer.model"),
                      "vocab_size": vocab, "bos_id": BOS},
        "shards": {"train": [{"file": "train_000000.bin", "tokens": len(train), "sha256": sha("train_000000.bin")}],
                   "val": [{"file": "val_000000.bin", "tokens": len(val), "sha256": sha("val_000000.bin")}]},
        "train_tokens": len(train), "val_tokens": len(val),
        "train_bytes": sum(map(len, train_docs)), "val_bytes": sum(map(len, val_docs)), "val_documents": len(val_docs),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def shipped_model(train: np.ndarray, train_docs: list[bytes], pieces: list[bytes], vocab: int) -> dict[str, np.ndarray]:
    width = max(map(len, pieces))
    byte_counts = np.bincount(np.frombuffer(b"".join(train_docs), dtype=np.uint8), minlength=256) + 1.0
    return {
        "table": bigram_logprobs(train, vocab, 0.1).astype(np.float32),
        # A second model (other half of the data, other smoothing): the "other pass" of the best-of rows.
        "table_b": bigram_logprobs(train[len(train) // 2 :], vocab, 1.0).astype(np.float32),
        # For the byte-level mixture (B2): each id's bytes, and an order-0 byte model of the training text.
        "piece_bytes": np.array([list(p.ljust(width, b"\0")) for p in pieces], dtype=np.uint8),
        "piece_len": np.array([len(p) for p in pieces], dtype=np.int64),
        "byte_logp": np.log(byte_counts / byte_counts.sum()),
    }


def build_world(tmp: Path) -> World:
    """records/tracks.toml whose CPU track uses the dataset, and the dataset: a 330-piece lossless BPE trained here,
    one train and one val shard ([BOS] + encode(doc) per document), raw val documents, manifest."""
    import sentencepiece as spm

    root = make_repo_tree(tmp, tracks_toml=TRACKS_TOML.replace('"shakespeare_sp1024"', f'"{DATASET}"'), datasets=())
    folder = root / "data" / "datasets" / DATASET
    (folder / "val_docs").mkdir(parents=True)
    sp = spm.SentencePieceProcessor(model_file=str(train_model(folder / "tokenizer.model", vocab_size=330, **LOSSLESS)))
    train_docs, val_docs = documents(24, 120, seed=11), documents(5, 120, seed=12)

    def stream(docs: list[bytes]) -> np.ndarray:
        return np.array([t for doc in docs for t in [BOS, *sp.encode(doc.decode())]], dtype=np.int64)

    train, val = stream(train_docs), stream(val_docs)
    write_shard(folder / "train_000000.bin", train)
    write_shard(folder / "val_000000.bin", val)
    for index, doc in enumerate(val_docs):
        (folder / "val_docs" / f"doc{index}.txt").write_bytes(doc)
    vocab, pieces = sp.get_piece_size(), piece_byte_strings(sp)
    manifest = write_manifest(folder, train, val, train_docs, val_docs, vocab)
    world = World(root, folder, val, train, vocab, manifest["val_bytes"], pieces,
                  shipped_model(train, train_docs, pieces, vocab))
    assert int(world.targets_bytes.sum()) == world.val_bytes  # the fixture's own byte rule is the contract's
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("catalog_probes"))


# --- planted records -------------------------------------------------------------------------------------------------


def scorer_source(body: str) -> str:
    return SCRIPT_TEMPLATE.format(bos=BOS, score=textwrap.dedent(body).strip() + "\n")


def scorer_function(body: str) -> Callable:
    """The planted `score(artifact, tokens)`, for computing what the record's own evaluation claims."""
    namespace: dict = {"np": np, "BOS": BOS}
    exec(textwrap.dedent(body), namespace)
    return namespace["score"]


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def windows(n_tokens: int, seq_len: int = SEQ_LEN):
    """The baseline's evaluation windows: (start, number of targets); every token after the first scored once."""
    for start in range(0, n_tokens - 1, seq_len):
        yield start, min(seq_len, n_tokens - 1 - start)


def gold_nats(logprobs: np.ndarray, targets: np.ndarray) -> float:
    return -float(np.asarray(logprobs, dtype=np.float64)[np.arange(len(targets)), targets].sum())


def claim_bpb(world: World, body: str, model: dict | None = None, stream: np.ndarray | None = None,
              denominator: int | None = None) -> float:
    """What the record's own evaluation prints: each window scored alone by its scorer, gold log-probs summed."""
    score, model = scorer_function(body), model or world.model
    stream = world.val if stream is None else stream
    nats = 0.0
    for start, length in windows(len(stream)):
        logprobs = score(model, stream[None, start : start + length])[0]
        nats += gold_nats(logprobs, stream[start + 1 : start + 1 + length])
    return nats / math.log(2) / (denominator or world.val_bytes)


def planted_record(world: World, name: str, body: str, *, claim: float | None = None, model: dict | None = None,
                   log_val_bytes: int | None = None) -> Path:
    """records/<cpu track>/<name>/: the scorer `body` as train_gpt.py, one seed (42), its artifact, its claim."""
    model = model or world.model
    claim = claim_bpb(world, body, model) if claim is None else claim
    overrides = {42: {"val_bytes": log_val_bytes}} if log_val_bytes is not None else None
    folder = make_record(world.root, name=name, seeds=(42,), bpbs=(claim,), script=scorer_source(body),
                         extra_files={"final_model_seed42.npz": npz_bytes(model)}, dataset=DATASET,
                         log_overrides=overrides)
    log = folder / "train_seed42.log"
    log.write_text(log.read_text().replace("hyperparameters: ", f"hyperparameters: TRAIN_SEQ_LEN={SEQ_LEN} ", 1))
    return folder


def probe(world: World, folder: Path, **options) -> dict:
    checks = probe_record(folder, rng_seed=0, records_root=world.root / "records",
                          datasets_root=world.root / "data" / "datasets", **options)
    return {check.id: check for check in checks}


def statuses(checks: dict) -> dict[str, str]:
    return {key: check.status for key, check in checks.items()}


ALL_PASS = {"normalization": "pass", "causality": "pass", "rescore": "pass"}


# --- the scorers (each the smallest form of its row; `artifact` is the loaded .npz) ----------------------------------

HONEST = """
def score(artifact, tokens):
    return artifact["table"][tokens].astype(np.float32)
"""

# Legitimate score-first adaptation inside a window: position t mixes in the counts of tokens 0..t, every one
# of which was given (or already scored) before token t+1 is predicted. Crosses document boundaries on purpose.
WINDOW_CACHE = """
def score(artifact, tokens):
    probs = np.exp(artifact["table"][tokens].astype(np.float64))
    seen = np.cumsum(np.eye(probs.shape[-1])[tokens], axis=1) + 1.0
    probs = 0.9 * probs + 0.1 * seen / seen.sum(axis=-1, keepdims=True)
    return np.log(probs).astype(np.float32)
"""

LOG_SOFTMAX = """
def log_softmax(logits):
    shift = logits.max(axis=-1, keepdims=True)
    return logits - shift - np.log(np.exp(logits - shift).sum(axis=-1, keepdims=True))
"""

# A2 inside the entry point: train on the window (its targets included), then score the same window again.
RESCORE_AFTER_TRAINING = LOG_SOFTMAX + """
def score(artifact, tokens):
    logits = artifact["table"].astype(np.float64)
    out = np.empty(tokens.shape + (logits.shape[1],), dtype=np.float32)
    for row, window in enumerate(tokens):
        tuned = logits.copy()
        np.add.at(tuned, (window[:-1], window[1:]), 0.5)
        out[row] = log_softmax(tuned)[window]
    return out
"""

# A3 at scoring time: a unigram prior "calibrated" on the tokens handed over for scoring.
CALIBRATED_ON_SCORED_TOKENS = """
def score(artifact, tokens):
    probs = np.exp(artifact["table"][tokens].astype(np.float64))
    prior = np.bincount(tokens.ravel(), minlength=probs.shape[-1]) + 1.0
    return np.log(0.8 * probs + 0.2 * prior / prior.sum()).astype(np.float32)
"""

# A4 (SLOT): 8 optimizer steps on a logit delta, minimizing the loss of the positions about to be scored.
SLOT = LOG_SOFTMAX + """
def score(artifact, tokens):
    table = artifact["table"].astype(np.float64)
    out = np.empty(tokens.shape + (table.shape[1],), dtype=np.float32)
    for row, window in enumerate(tokens):
        delta = np.zeros(table.shape[1])
        for _ in range(8):
            probs = np.exp(log_softmax(table[window[:-1]] + delta))
            delta -= (probs - np.eye(table.shape[1])[window[1:]]).mean(axis=0)
        out[row] = log_softmax(table[window] + delta)
    return out
"""

# A5: the mixing weight at position t is a function of the NLL of the token it predicts.
TARGET_WEIGHTED_MIX = """
def score(artifact, tokens):
    logp = artifact["table"][tokens].astype(np.float64)
    gold_nll = -np.take_along_axis(logp[:, :-1], tokens[:, 1:, None], axis=-1)[..., 0]
    alpha = np.full(tokens.shape, 0.1)
    alpha[:, :-1] = 1.0 / (1.0 + np.exp(3.0 - gold_nll))
    probs = (1 - alpha[..., None]) * np.exp(logp) + alpha[..., None] / logp.shape[-1]
    return np.log(probs).astype(np.float32)
"""

# A6 inside the entry point: for every token, the better of two passes (the max of two log-distributions).
BEST_OF_TWO = """
def score(artifact, tokens):
    return np.maximum(artifact["table"][tokens], artifact["table_b"][tokens]).astype(np.float32)
"""

MIX_OF_TWO = """
def score(artifact, tokens):
    probs = 0.5 * np.exp(artifact["table"][tokens].astype(np.float64))
    probs += 0.5 * np.exp(artifact["table_b"][tokens].astype(np.float64))
    return np.log(probs).astype(np.float32)
"""

# A7: the BOS position (predicting document b's first token) peeks at that token.
BOUNDARY_PEEK = """
def score(artifact, tokens):
    probs = np.exp(artifact["table"][tokens].astype(np.float64))
    rows, cols = np.nonzero(tokens[:, :-1] == BOS)
    probs[rows, cols] *= 0.5
    probs[rows, cols, tokens[rows, cols + 1]] += 0.5
    return np.log(probs).astype(np.float32)
"""

# B1: a 4-bucket hashed cache; each token receives its whole bucket's share, so the "distribution" sums to ~V/8.
HASHED_CACHE = """
def score(artifact, tokens):
    probs = np.exp(artifact["table"][tokens].astype(np.float64))
    hits = np.eye(4)[tokens % 4]
    counts = np.cumsum(hits, axis=1) + 1.0
    bucket_share = counts / counts.sum(axis=-1, keepdims=True)
    return np.log(0.5 * probs + 0.5 * bucket_share[..., np.arange(probs.shape[-1]) % 4]).astype(np.float32)
"""

# B2: a byte-level model's product over each token's bytes mixed into the token softmax, as if both were
# distributions over the same alphabet.
BYTE_PRODUCT_MIX = """
def score(artifact, tokens):
    probs = np.exp(artifact["table"][tokens].astype(np.float64))
    pieces, lengths = artifact["piece_bytes"], artifact["piece_len"]
    inside = np.arange(pieces.shape[1])[None, :] < lengths[:, None]
    per_token = np.exp(np.where(inside, artifact["byte_logp"][pieces], 0.0).sum(axis=1))
    return np.log(0.5 * probs + 0.5 * per_token).astype(np.float32)
"""

# B3: a model over a smaller vocabulary; ids at or above its head size are impossible for it.
CLAMPED_HEAD = """
def score(artifact, tokens):
    head = artifact["table"]
    out = np.full(tokens.shape + (int(artifact["vocab"]),), -np.inf, dtype=np.float32)
    out[..., : head.shape[1]] = head[np.minimum(tokens, head.shape[0] - 1)]
    return out
"""

# D3: training data read at evaluation time (through the trainer's DATA_PATH), mixed in as a unigram.
READS_TRAINING_DATA = """
def score(artifact, tokens):
    import os
    probs = np.exp(artifact["table"][tokens].astype(np.float64))
    data = os.environ.get("DATA_PATH")
    if data:
        train = np.fromfile(os.path.join(data, "train_000000.bin"), dtype="<u2", offset=1024).astype(np.int64)
        unigram = np.bincount(train, minlength=probs.shape[-1]) + 1.0
        probs = 0.7 * probs + 0.3 * unigram / unigram.sum()
    return np.log(probs).astype(np.float32)
"""


# --- planted evaluations (what a record's own eval loop did) -------------------------------------------------------


def log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    shift = logits.max(axis=-1, keepdims=True)
    return logits - shift - np.log(np.exp(logits - shift).sum(axis=-1, keepdims=True))


def sgd_step(logits: np.ndarray, stream: np.ndarray, lr: float) -> np.ndarray:
    """One gradient step of bigram logits on the NLL of `stream`'s bigrams, renormalized."""
    probs = np.exp(log_softmax_rows(logits))
    grad = np.zeros_like(logits)
    np.add.at(grad, stream[:-1], probs[stream[:-1]])
    np.add.at(grad, (stream[:-1], stream[1:]), -1.0)
    return log_softmax_rows(logits - lr * grad)


def stream_bpb(world: World, logits: np.ndarray) -> float:
    return -float(logits[world.val[:-1], world.val[1:]].sum()) / math.log(2) / world.val_bytes


def score_then_train_passes(world: World, epochs: int, lr: float) -> list[float]:
    """Per epoch: score each window with the current model, then take a gradient step on it. One bpb per pass."""
    logits = world.model["table"].astype(np.float64)
    passes = []
    for _ in range(epochs):
        nats = 0.0
        for start, length in windows(len(world.val)):
            window = world.val[start : start + length + 1]
            nats -= float(logits[window[:-1], window[1:]].sum())
            logits = sgd_step(logits, window, lr)
        passes.append(nats / math.log(2) / world.val_bytes)
    return passes


# --- the honest twin -----------------------------------------------------------------------------------------------


def test_a1_honest_twin_plain_scoring_passes_all_probes(world):
    checks = probe(world, planted_record(world, "2026-03-01_honest", HONEST))
    assert statuses(checks) == ALL_PASS, {k: c.message for k, c in checks.items()}


def test_a1_score_first_adaptation_inside_a_window_is_legitimate(world):
    """Test-time adaptation on tokens already given is allowed: it passes causality, normalization and rescore."""
    checks = probe(world, planted_record(world, "2026-03-01_adapt", WINDOW_CACHE))
    assert statuses(checks) == ALL_PASS, {k: c.message for k, c in checks.items()}


# --- A. the model sees validation tokens before it is scored on them ------------------------------------------------


def test_a1_fine_tuned_on_val_then_scored_fails_rescore(world):
    """One SGD epoch on the whole validation stream, then the plain evaluation: the claim is not the artifact's."""
    tuned = sgd_step(world.model["table"].astype(np.float64), world.val, lr=0.05)
    claim = stream_bpb(world, tuned)
    honest = stream_bpb(world, world.model["table"].astype(np.float64))
    assert claim < honest - 0.01  # the planted fine-tune does improve the number it reports
    checks = probe(world, planted_record(world, "2026-03-02_ttt", HONEST, claim=claim))
    assert checks["rescore"].status == "fail"
    assert f"claims {claim:.8f}" in checks["rescore"].message
    assert checks["rescore"].evidence["seeds"]["42"]["rescored_bpb"] == pytest.approx(honest, abs=1e-5)


def test_a2_last_of_two_score_then_train_passes_fails_rescore(world):
    passes = score_then_train_passes(world, epochs=2, lr=0.05)
    assert passes[1] < passes[0] - 0.01  # the second pass has trained on every window it scores
    checks = probe(world, planted_record(world, "2026-03-03_twopass", HONEST, claim=passes[1]))
    assert checks["rescore"].status == "fail" and f"claims {passes[1]:.8f}" in checks["rescore"].message


def test_a2_rescoring_a_window_after_training_on_it_fails_causality(world):
    checks = probe(world, planted_record(world, "2026-03-03_retrain", RESCORE_AFTER_TRAINING))
    assert checks["causality"].status == "fail" and "look-ahead" in checks["causality"].message
    assert checks["normalization"].status == "pass"


def test_a3_calibration_on_the_scored_tokens_fails_causality(world):
    checks = probe(world, planted_record(world, "2026-03-04_calibrate", CALIBRATED_ON_SCORED_TOKENS))
    assert checks["causality"].status == "fail"
    message = checks["causality"].message
    assert "rows must be scored independently" in message or "look-ahead" in message


def test_a4_slot_delta_optimized_on_the_scored_window_fails_causality(world):
    checks = probe(world, planted_record(world, "2026-03-05_slot", SLOT))
    assert checks["causality"].status == "fail" and "look-ahead" in checks["causality"].message
    assert checks["normalization"].status == "pass"  # a proper distribution; it was fitted to its own targets


def test_a5_mixing_weight_from_the_target_nll_fails_causality(world):
    checks = probe(world, planted_record(world, "2026-03-06_alpha", TARGET_WEIGHTED_MIX))
    assert checks["causality"].status == "fail" and "look-ahead" in checks["causality"].message
    assert checks["normalization"].status == "pass"  # a proper mixture; only its weight reads the target


def test_a6_per_token_min_of_two_passes_claim_fails_rescore(world):
    """The eval reported min(nll_a, nll_b) per token; the artifact is model a."""
    nll_a = -world.model["table"].astype(np.float64)[world.val[:-1], world.val[1:]]
    nll_b = -world.model["table_b"].astype(np.float64)[world.val[:-1], world.val[1:]]
    claim = float(np.minimum(nll_a, nll_b).sum()) / math.log(2) / world.val_bytes
    checks = probe(world, planted_record(world, "2026-03-07_minpass", HONEST, claim=claim))
    assert checks["rescore"].status == "fail" and f"claims {claim:.8f}" in checks["rescore"].message


def test_a6_best_of_two_distributions_fails_normalization(world):
    checks = probe(world, planted_record(world, "2026-03-07_maxdist", BEST_OF_TWO))
    assert statuses(checks) == {"normalization": "fail", "causality": "pass", "rescore": "pass"}
    assert "do not sum to 1" in checks["normalization"].message


def test_a6_honest_twin_mixture_of_two_passes(world):
    checks = probe(world, planted_record(world, "2026-03-07_mix", MIX_OF_TWO))
    assert statuses(checks) == ALL_PASS, {k: c.message for k, c in checks.items()}


def test_a7_boundary_position_reading_the_next_document_fails_causality(world):
    checks = probe(world, planted_record(world, "2026-03-08_peek", BOUNDARY_PEEK), positions=2)
    assert statuses(checks) == {"normalization": "pass", "causality": "fail", "rescore": "pass"}
    assert "at a document boundary" in checks["causality"].message


def test_a7_next_document_conditioning_on_the_previous_one_is_legitimate(world):
    """Packed row [a..., BOS, b...]: b's predictions may read a (tokens before them in the scored stream). The probe
    measures it and reports it as evidence; it is not a failure."""
    checks = probe(world, planted_record(world, "2026-03-08_context", WINDOW_CACHE))
    assert checks["causality"].status == "pass"
    cross = checks["causality"].evidence["seeds"]["42"]["cross_document"]
    assert cross["later_document_reads_earlier"] is True and cross["max_change"] > 1e-3
    plain = probe(world, planted_record(world, "2026-03-08_bigram", HONEST))
    assert plain["causality"].evidence["seeds"]["42"]["cross_document"]["later_document_reads_earlier"] is False


# --- B. the score is not a normalized probability over the token alphabet ------------------------------------------


def test_b1_hashed_cache_given_to_every_token_fails_normalization_only(world):
    checks = probe(world, planted_record(world, "2026-03-09_hash", HASHED_CACHE))
    assert statuses(checks) == {"normalization": "fail", "causality": "pass", "rescore": "pass"}
    assert "do not sum to 1" in checks["normalization"].message
    assert checks["normalization"].evidence["seeds"]["42"]["max_abs_logsumexp"] > math.log(10)


def test_b2_byte_product_mixed_with_token_softmax_fails_normalization(world):
    checks = probe(world, planted_record(world, "2026-03-10_bytemix", BYTE_PRODUCT_MIX))
    assert checks["normalization"].status == "fail" and "do not sum to 1" in checks["normalization"].message
    assert checks["causality"].status == "pass"


def test_b3_targets_clamped_into_a_smaller_vocabulary_fails_rescore(world):
    """The model's head covers the first V-40 ids; its eval clamped targets with y.clamp(max=head-1). The judge
    scores its own targets: every clamped target gets probability 0."""
    head = world.vocab - 40
    clamped_train = np.minimum(world.train, head - 1)
    model = {"table": bigram_logprobs(clamped_train, head, 0.1).astype(np.float32), "vocab": np.array(world.vocab)}
    inputs, targets = np.minimum(world.val[:-1], head - 1), world.val[1:]
    assert (targets >= head).sum() > 0  # the validation text does use the dropped ids
    claim = -float(model["table"].astype(np.float64)[inputs, np.minimum(targets, head - 1)].sum()) \
        / math.log(2) / world.val_bytes
    checks = probe(world, planted_record(world, "2026-03-11_clamp", CLAMPED_HEAD, claim=claim, model=model))
    assert checks["normalization"].status == "pass"  # normalized over the ids it does predict
    assert checks["rescore"].status == "fail"
    assert f"{int((targets >= head).sum())} gold token(s) got probability 0" in checks["rescore"].message


# --- C. wrong number of bytes in the bpb denominator (the probe's side: rescore with the manifest's bytes) ----------


def test_c3_leading_space_counted_twice_claim_fails_rescore(world):
    """The record's table and eval loop each count the leading space of ▁-pieces: +1 byte per such target."""
    leading = sum(1 for t in world.val[1:] if world.piece_bytes[t].startswith(b" "))
    wrong_bytes = world.val_bytes + leading
    claim = claim_bpb(world, HONEST, denominator=wrong_bytes)
    checks = probe(world, planted_record(world, "2026-03-12_space", HONEST, claim=claim, log_val_bytes=wrong_bytes))
    message = checks["rescore"].message
    assert checks["rescore"].status == "fail"
    assert f"the claim implies {wrong_bytes:,} bytes" in message and f"the log counts val_bytes {wrong_bytes:,}" in message


def test_c5_only_part_of_the_validation_set_scored_fails_rescore(world):
    """The eval scored val[:N] (the first two fifths) and divided by those tokens' bytes."""
    part = world.val[: 2 * len(world.val) // 5]
    part_bytes = sum(len(world.piece_bytes[t]) for t in part[1:])
    claim = claim_bpb(world, HONEST, stream=part, denominator=part_bytes)
    assert abs(claim - claim_bpb(world, HONEST)) > 1e-3  # the subset scores differently from the whole set
    checks = probe(world, planted_record(world, "2026-03-13_partial", HONEST, claim=claim))
    assert checks["rescore"].status == "fail"
    assert checks["rescore"].evidence["seeds"]["42"]["targets"] == len(world.val) - 1


# --- D3. training data read during evaluation -----------------------------------------------------------------------


def test_d3_scorer_reading_training_data_fails_rescore(world, monkeypatch):
    """Its own eval could read the training shard (DATA_PATH); the judge scores with the artifact and tokens only."""
    monkeypatch.setenv("DATA_PATH", str(world.dataset))
    claim = claim_bpb(world, READS_TRAINING_DATA)
    monkeypatch.delenv("DATA_PATH")
    assert abs(claim - claim_bpb(world, READS_TRAINING_DATA)) > 1e-3
    checks = probe(world, planted_record(world, "2026-03-14_traindata", READS_TRAINING_DATA, claim=claim))
    assert checks["rescore"].status == "fail" and f"claims {claim:.8f}" in checks["rescore"].message


def test_d3_scorer_reading_training_data_by_absolute_path_is_caught(world):
    body = READS_TRAINING_DATA.replace('os.environ.get("DATA_PATH")', repr(str(world.dataset)))
    claim = claim_bpb(world, body)
    assert abs(claim - claim_bpb(world, HONEST)) > 1e-3  # the training data does change the score
    checks = probe(world, planted_record(world, "2026-03-14_abspath", body, claim=claim))
    assert "fail" in statuses(checks).values(), {k: c.message for k, c in checks.items()}

"""Is the record's model a real, causal distribution, and does it earn the score it claims?

Three probes, each asked through the record's own scoring entry point (docs/CONTRACTS.md §4) in a sandboxed child
process (tools.verify.scorer_client); the judge receives plain arrays and does all the arithmetic here, in float64:

- `normalization`: at every position the judge sees, logsumexp over the whole vocabulary is 0 within 1e-3.
  A mixture that renormalizes only the gold token (FAILURES.md B1/B2) is caught because the judge asks for the
  full distribution, never for the gold token's probability alone.
- `causality`: the log-probabilities at positions <= t must not move when the tokens after t change. Positions t
  are sampled in real validation windows, always including both sides of a document boundary (`[a..., BOS, b...]`:
  the last token of a and the BOS itself), so a leak that happens only at boundaries (A7) is reachable. The
  windows are also scored alone in a separate call: a row's output must not depend on the other rows of the
  batch (contract §4 defines rows as independent; a scorer that adapts to the whole batch fails here).
  Conditioning across a document boundary is legitimate and is only reported: the rule is "tokens before t",
  and the baseline's evaluation windows themselves span documents. A violation must repeat in BATCH_ROUNDS pairs
  of scorer runs to count: honest kernels can differ slightly from one run to the next.
- `rescore`: the judge computes val_bpb from the scorer's log-probabilities over the full validation stream,
  windowed as the baseline evaluates it (windows of L = the log's EVAL_SEQ_LEN, else TRAIN_SEQ_LEN, starting every
  EVAL_STRIDE tokens, consecutive when the log names none; each window sees only its own tokens and scores only
  targets no earlier window scored; every token after the first is a target exactly once; the short last window
  padded), divided by the manifest's val_bytes, and it must match the seed's claims (log and submission.json)
  within 1e-4.

Every seed that ships `final_model_seed<SEED>.*` is probed (the scorer always on CPU, float32). Cost on the CPU
track (bench/bench_probes.py, baseline model, ~250K targets x V=1024, ~1 GB of float32 log-probabilities): about
3 s for causality + normalization and 11 s for the rescore in 256 MiB chunks on an idle 2-core box; the judge's
memory is about one chunk (memory-mapped) plus a 32 MiB float64 block.

Entry point: `probe_record(folder, ...) -> list[CheckResult]` (ids `normalization`, `causality`, `rescore`).
A record whose script has no `score` command, or that ships no artifact, gets `skip` with the reason and a note
that a human must review it. Limits: the child runs as the judge's user; the judge's datasets and records are
hidden from it in a private mount namespace where the machine allows one (tools.verify.sandbox), else it could
read files it can find.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.records.model import CheckResult, ParsedLog, Record, RecordError, Status, Track
from tools.records.paths import read_regular_file
from tools.verify.scorer_client import ScorerFailed, ScorerSession, ScorerUnavailable, has_score_entry_point

CHECK_IDS = ("normalization", "causality", "rescore")
NORMALIZATION_TOLERANCE = 1e-3  # |logsumexp| over the vocabulary, nats
CAUSALITY_RTOL = 1e-5  # allowed change of a log-probability that must not move, relative to its value...
CAUSALITY_ATOL = 1e-5  # ...plus this floor (nats), for values near 0 and float32 rounding of the logits
RESCORE_TOLERANCE = 1e-4  # |rescored val_bpb - claimed val_bpb|
DEFAULT_POSITIONS = 16  # perturbed positions per artifact
BATCH_ROUNDS = 3  # a causality violation fails only when it repeats in this many pairs of scorer runs
PROBE_WINDOW_MAX = 1024  # causality windows are at most this long (the model's own sequence length if shorter)
PROBE_WINDOW_UNKNOWN_SEQ = 128  # window length when the log names no sequence length
DEFAULT_CHUNK_BYTES = 256 * 1024**2  # output of one rescore call (float32): bounds the child's and our memory
DEFAULT_MAX_RESCORE_TARGETS = 2_000_000  # beyond this a CPU rescore is impractical; the GPU runner's job
DEFAULT_TIMEOUT_S = 600.0  # per scorer call
MAX_WINDOW_BYTES = 1024**3  # one evaluation window's float32 log-probabilities (the output of one call, at least)
BLOCK_BYTES = 32 * 1024**2  # float64 working set when reducing a scorer's output
HUMAN_REVIEW = "a human must review the model's distributions"

SHARD_MAGIC, SHARD_VERSION, SHARD_HEADER_WORDS = 20240520, 1, 256
MAX_MANIFEST_BYTES = 50_000_000


# --- the validation data (the judge's own dataset folder, contract §1) ----------------------------------------------


@dataclass(frozen=True)
class ValidationSet:
    dataset: str
    folder: Path
    tokens: np.ndarray  # uint16, every val shard in manifest order, BOS tokens included
    vocab_size: int
    bos_id: int | None
    val_bytes: int
    manifest_sha256: str


def read_shard(path: Path) -> np.ndarray:
    """One shard's tokens: 256 little-endian int32 header words (magic, version, count, ...), then uint16 tokens."""
    header_bytes = 4 * SHARD_HEADER_WORDS
    try:
        with open(path, "rb") as handle:
            raw = handle.read(header_bytes)
            size = os.fstat(handle.fileno()).st_size
    except OSError as problem:
        raise RecordError(path, f"cannot read shard: {problem.strerror or problem}") from None
    header = np.frombuffer(raw[: len(raw) - len(raw) % 4], dtype="<i4")
    if len(header) < SHARD_HEADER_WORDS or header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION:
        raise RecordError(path, f"not a shard (expected header words {SHARD_MAGIC}, {SHARD_VERSION})")
    count = int(header[2])
    if count < 0 or size != header_bytes + 2 * count:
        raise RecordError(path, f"{size} bytes, but the header's token count {count} needs {header_bytes + 2 * count}")
    return np.fromfile(path, dtype="<u2", count=count, offset=header_bytes)


def _val_shard_paths(folder: Path, manifest: Mapping[str, Any], manifest_path: Path) -> list[Path]:
    listed = (manifest.get("shards") or {}).get("val") if isinstance(manifest.get("shards"), Mapping) else None
    if not listed:
        return sorted(folder.glob("val_*.bin"))
    names = []
    for entry in listed:
        name = entry.get("file") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
            raise RecordError(manifest_path, f"shards.val: bad file entry {entry!r}")
        names.append(folder / name)
    return names


def load_validation_set(folder: Path) -> ValidationSet:
    """Read a prepared dataset's manifest and val shards. RecordError naming the file when anything is off."""
    import hashlib

    manifest_path = folder / "manifest.json"
    try:
        raw, truncated = read_regular_file(manifest_path, MAX_MANIFEST_BYTES)
    except (OSError, ValueError) as problem:
        raise RecordError(manifest_path, f"cannot read the dataset manifest: {getattr(problem, 'strerror', None) or problem}") from None
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as problem:
        raise RecordError(manifest_path, f"not valid JSON: {problem}") from None
    if truncated or not isinstance(manifest, dict):
        raise RecordError(manifest_path, "not a manifest (expected a JSON object)")
    tokenizer = manifest.get("tokenizer") if isinstance(manifest.get("tokenizer"), dict) else {}
    vocab_size, bos_id, val_bytes = tokenizer.get("vocab_size"), tokenizer.get("bos_id"), manifest.get("val_bytes")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
        raise RecordError(manifest_path, f"tokenizer.vocab_size: expected an integer >= 2, got {vocab_size!r}")
    if not isinstance(val_bytes, int) or isinstance(val_bytes, bool) or val_bytes <= 0:
        raise RecordError(manifest_path, f"val_bytes: expected a positive integer, got {val_bytes!r}")
    if bos_id is not None and (not isinstance(bos_id, int) or not 0 <= bos_id < vocab_size):
        raise RecordError(manifest_path, f"tokenizer.bos_id: expected an id below {vocab_size}, got {bos_id!r}")
    shards = _val_shard_paths(folder, manifest, manifest_path)
    if not shards:
        raise RecordError(folder, "no validation shards (val_*.bin)")
    tokens = np.concatenate([read_shard(path) for path in shards])
    expected = manifest.get("val_tokens")
    if isinstance(expected, int) and expected != len(tokens):
        raise RecordError(manifest_path, f"val_tokens is {expected}, but the val shards hold {len(tokens)} tokens")
    if len(tokens) < 2:
        raise RecordError(folder, f"the validation stream holds {len(tokens)} token(s); nothing to score")
    if int(tokens.max()) >= vocab_size:
        raise RecordError(folder, f"val shards hold token id {int(tokens.max())} >= tokenizer.vocab_size {vocab_size}")
    return ValidationSet(
        dataset=str(manifest.get("dataset") or folder.name), folder=folder, tokens=tokens, vocab_size=vocab_size,
        bos_id=bos_id, val_bytes=val_bytes, manifest_sha256=hashlib.sha256(raw).hexdigest(),
    )


# --- windows (the baseline's evaluation, contract §2 / train_gpt.py eval_val) -------------------------------------------


def eval_windows(n_tokens: int, seq_len: int, stride: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, length, first scored position) of each evaluation window (contract §2): window k reads tokens
    [kS, kS + n) and predicts [kS + 1, kS + n], n = min(L, targets - kS), S = the stride (0 or >= L: S = L,
    consecutive windows); it scores positions [first, n): all of them for k = 0, else the last S (earlier windows
    scored the rest). The last window is the first that reaches the end: every token after the first is a target
    exactly once."""
    if seq_len < 1:
        raise ValueError(f"sequence length must be positive, got {seq_len}")
    if stride < 0:
        raise ValueError(f"stride must be >= 0, got {stride}")
    stride = min(stride, seq_len) or seq_len
    n_targets = n_tokens - 1
    if n_targets <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    last = max(0, -(-(n_targets - seq_len) // stride))  # index of the first window reaching the end
    starts = np.arange(last + 1, dtype=np.int64) * stride
    firsts = np.full(len(starts), seq_len - stride, dtype=np.int64)
    firsts[0] = 0
    return starts, np.minimum(seq_len, n_targets - starts), firsts


def window_batch(stream: np.ndarray, starts: np.ndarray, lengths: np.ndarray, seq_len: int,
                 pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [k, seq_len] (a short window padded after its last input with `pad_id`) and targets [k, seq_len]
    (padding positions hold 0; they are never scored)."""
    inputs = np.full((len(starts), seq_len), pad_id, dtype=np.int64)
    targets = np.zeros((len(starts), seq_len), dtype=np.int64)
    for row, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        inputs[row, :length] = stream[start : start + length]
        targets[row, :length] = stream[start + 1 : start + 1 + length]
    return inputs, targets


# --- arithmetic on log-probabilities (pure, float64) -------------------------------------------------------------------


def logsumexp(logprobs: np.ndarray) -> np.ndarray:
    """logsumexp over the last axis in float64; -inf for a position whose every entry is -inf."""
    values = np.array(logprobs, dtype=np.float64)  # one float64 copy, then worked on in place
    shift = values.max(axis=-1, keepdims=True)
    shift[~np.isfinite(shift)] = 0.0
    values -= shift
    np.exp(values, out=values)
    with np.errstate(divide="ignore"):
        return np.log(values.sum(axis=-1)) + shift[..., 0]


def drift(reference: np.ndarray, candidate: np.ndarray, rtol: float = CAUSALITY_RTOL,
          atol: float = CAUSALITY_ATOL) -> tuple[float, float, tuple[int, ...]]:
    """How far `candidate` moved from `reference`, as (worst |change| / allowed change, that |change|, its index).

    Allowed change: rtol * |reference| + atol. Equal values (both -inf included) count 0; a finite value that
    became -inf (or back) counts infinity. A ratio above 1 means the values moved.
    """
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.size == 0:
        return 0.0, 0.0, ()
    with np.errstate(invalid="ignore"):
        change = np.where(a == b, 0.0, np.abs(a - b))
    allowed = rtol * np.where(np.isfinite(b), np.abs(b), 0.0) + atol
    ratio = change / allowed
    index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return float(ratio[index]), float(change[index]), tuple(int(i) for i in index)


@dataclass
class Worst:
    """The largest value seen so far, where it was, and how many values were looked at."""

    value: float = 0.0
    where: str = ""
    count: int = 0

    def consider(self, value: float, where: Callable[[], str], count: int = 1) -> None:
        self.count += count
        if value > self.value or (math.isnan(value) and not math.isnan(self.value)):
            self.value, self.where = value, where()


def check_normalization(logprobs: np.ndarray, tally: Worst, label: Callable[[int, int], str],
                        row_offset: int = 0) -> None:
    """Fold |logsumexp| of every position of `logprobs` [B, T, V] into `tally`, block by block (bounded memory).
    `label(row, position)` names a position for the report."""
    if len(logprobs) == 0:
        return
    rows_per_block = max(1, BLOCK_BYTES // max(1, logprobs[0].size * 8))
    for start in range(0, len(logprobs), rows_per_block):
        total = logsumexp(logprobs[start : start + rows_per_block])
        deviation = np.abs(total)
        row, position = (int(i) for i in np.unravel_index(int(np.argmax(deviation)), deviation.shape))
        signed = float(total[row, position])

        def where(r=row, p=position, s=start, value=signed) -> str:
            mass = f", total probability {math.exp(value):.4g}" if value < 700 else ""
            return f"{label(row_offset + s + r, p)} (logsumexp {value:+.4g}{mass})"

        tally.consider(float(deviation[row, position]), where, count=deviation.size)


def gold_logprob_sum(logprobs: np.ndarray, targets: np.ndarray, lengths: np.ndarray,
                     firsts: np.ndarray | None = None) -> tuple[float, int]:
    """(sum of the gold tokens' log-probabilities over the scored positions [first, length) of each row, in
    float64; how many were -inf)."""
    gold = np.take_along_axis(np.asarray(logprobs), targets[..., None], axis=-1)[..., 0].astype(np.float64)
    positions = np.arange(targets.shape[1])[None, :]
    scored = positions < lengths[:, None]
    if firsts is not None:
        scored &= positions >= firsts[:, None]
    values = gold[scored]
    return float(values.sum()), int(np.isneginf(values).sum())


def bits_per_byte(total_nats: float, val_bytes: int) -> float:
    return total_nats / math.log(2) / val_bytes


# --- the causality batch ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    base: int  # which base window it perturbs
    position: int  # "future": tokens after `position` replaced; "past": tokens before `position` replaced
    kind: str  # "future" | "past"
    at_boundary: bool = False


@dataclass(frozen=True)
class ProbeBatch:
    bases: np.ndarray  # [W, T] real validation windows
    base_starts: tuple[int, ...]  # their offsets in the validation stream
    boundaries: tuple[int | None, ...]  # index of an interior BOS in each base window (None: none chosen)
    variants: tuple[Variant, ...]
    rows: np.ndarray  # [W + K, T]: every base and variant, in the (shuffled) order the scorer sees them
    base_rows: tuple[int, ...]  # row of each base in `rows`
    variant_rows: tuple[int, ...]  # row of each variant in `rows`


def probe_window(seq_len: int | None, vocab_size: int, rows: int, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Length of the causality windows: the model's evaluation length (PROBE_WINDOW_UNKNOWN_SEQ when the log does not
    say), at most PROBE_WINDOW_MAX, and short enough that `rows` float32 rows of `vocab_size` fit `budget_bytes`
    (a large vocabulary must not make the probe's output huge)."""
    fits = budget_bytes // max(1, rows * vocab_size * 4)
    return max(2, min(seq_len or PROBE_WINDOW_UNKNOWN_SEQ, PROBE_WINDOW_MAX, fits))


def _real_text(stream: np.ndarray, length: int, avoid: int, rng: np.random.Generator) -> np.ndarray:
    """`length` consecutive validation tokens from a random place (not overlapping offset `avoid` if possible).
    Real text rather than uniform noise: the probe's inputs should look like any other input."""
    if length <= 0:
        return stream[:0].astype(np.int64)
    high = len(stream) - length
    offset = int(rng.integers(0, high + 1))
    for _ in range(8):
        if abs(offset - avoid) >= length:
            break
        offset = int(rng.integers(0, high + 1))
    return stream[offset : offset + length].astype(np.int64)


def build_probe_batch(stream: np.ndarray, vocab_size: int, bos_id: int | None, window: int, n_positions: int,
                      rng: np.random.Generator) -> ProbeBatch:
    """Two real validation windows of `window` tokens (the first around a document boundary when the stream has
    one), `n_positions` perturbed positions between them (both sides of the boundary always among them), and one
    "past" variant that changes document a and keeps document b (evidence only)."""
    n = len(stream)
    window = max(2, min(window, n))
    interior = np.flatnonzero(stream[1:] == bos_id) + 1 if bos_id is not None else np.zeros(0, dtype=np.int64)
    starts: list[int] = []
    boundaries: list[int | None] = []
    if len(interior):
        bos = int(rng.choice(interior))
        start = int(np.clip(bos - window // 2, 0, n - window))
        starts.append(start)
        boundaries.append(bos - start)
    while len(starts) < 2:
        starts.append(int(rng.integers(0, n - window + 1)))
        boundaries.append(None)
    bases = np.stack([stream[s : s + window].astype(np.int64) for s in starts])

    variants: list[Variant] = []
    per_window = [n_positions - n_positions // 2, n_positions // 2]
    for index, boundary in enumerate(boundaries):
        chosen: list[int] = []
        if boundary is not None:  # the last token of a (predicting BOS), the BOS (predicting b's first token)
            chosen += [t for t in (boundary - 1, boundary) if 0 <= t <= window - 2]
        others = [t for t in rng.permutation(window - 1).tolist() if t not in chosen]
        chosen += others[: max(0, per_window[index] - len(chosen))]
        variants += [Variant(index, t, "future", at_boundary=boundary is not None and t in (boundary - 1, boundary))
                     for t in chosen]
        if boundary is not None:
            variants.append(Variant(index, boundary, "past", at_boundary=True))

    variant_tokens = []
    for variant in variants:
        tokens = bases[variant.base].copy()
        t = variant.position
        if variant.kind == "future":
            tokens[t + 1 :] = _real_text(stream, window - t - 1, starts[variant.base] + t + 1, rng)
            changed = t + 1
        else:
            tokens[:t] = _real_text(stream, t, starts[variant.base], rng)
            changed = t - 1
        if tokens[changed] == bases[variant.base][changed]:  # the nearest replaced token must differ
            tokens[changed] = (tokens[changed] + int(rng.integers(1, vocab_size))) % vocab_size
        variant_tokens.append(tokens)
    ordered = [*bases, *variant_tokens]
    order = rng.permutation(len(ordered))  # rows in random order: a probe row has no fixed place
    where = np.argsort(order)  # where[i] = row of item i
    rows = np.stack([ordered[i] for i in order])
    return ProbeBatch(bases=bases, base_starts=tuple(starts), boundaries=tuple(boundaries), variants=tuple(variants),
                      rows=rows, base_rows=tuple(int(where[i]) for i in range(len(bases))),
                      variant_rows=tuple(int(where[len(bases) + k]) for k in range(len(variants))))


# --- per-seed findings -----------------------------------------------------------------------------------------------


@dataclass
class Finding:
    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeedProbe:
    seed: int
    findings: dict[str, Finding] = field(default_factory=dict)
    calls: int = 0
    wall_s: float = 0.0


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)


def _score_copy(session: ScorerSession, tokens: np.ndarray, normalization: Worst, kind: str) -> np.ndarray:
    """One scorer call, its normalization folded into `normalization`, returned as an in-memory copy."""
    with session.score(tokens) as scored:
        check_normalization(scored, normalization, lambda row, position: f"{kind} row {row}, position {position}")
        copy = np.array(scored)  # copied: the file goes when the block ends
        del scored  # and unmapped
    return copy


Drift = tuple[float, float, str]  # (ratio to tolerance, change, where)


@dataclass
class CausalityRound:
    """One pair of scorer runs (the bases alone, then every row together) and what it shows."""

    batch: list[Drift]  # per base window: alone vs among the other rows
    look_ahead: list[Drift]  # per "future" variant: positions <= t of the variant vs its base, in one call
    cross_document: dict[str, Any]

    def violated(self) -> bool:
        return any(ratio > 1 for ratio, _, _ in (*self.batch, *self.look_ahead))


def _causality_round(batch: ProbeBatch, alone: np.ndarray, together: np.ndarray) -> CausalityRound:
    batch_drifts = []
    for index, row in enumerate(batch.base_rows):
        ratio, change, at = drift(alone[index], together[row])
        batch_drifts.append((ratio, change, f"window {index} (stream offset {batch.base_starts[index]}) position "
                                            f"{at[0] if at else 0}: its log-probabilities changed by {_fmt(change)} "
                                            f"when other rows shared the batch"))
    look_ahead, cross_document = [], {}
    for variant, row in zip(batch.variants, batch.variant_rows, strict=True):
        base = together[batch.base_rows[variant.base]]
        if variant.kind == "past":  # legitimate context: report whether document b reads document a
            later, perturbed = base[variant.position :], together[row][variant.position :]
            with np.errstate(invalid="ignore"):
                largest = float(np.where(later == perturbed, 0.0, np.abs(later.astype(np.float64) - perturbed)).max())
            cross_document = {"boundary_offset": batch.base_starts[variant.base] + variant.position,
                              "later_document_reads_earlier": drift(later, perturbed)[0] > 1, "max_change": largest}
            continue
        t = variant.position
        ratio, change, at = drift(base[: t + 1], together[row][: t + 1])
        boundary = " (at a document boundary)" if variant.at_boundary else ""
        look_ahead.append((ratio, change, f"window {variant.base} (stream offset {batch.base_starts[variant.base]}): "
                                          f"changing only the tokens after position {t}{boundary} moved the "
                                          f"log-probability of token {at[1] if at else 0} at position "
                                          f"{at[0] if at else 0} by {_fmt(change)}"))
    return CausalityRound(batch_drifts, look_ahead, cross_document)


def _probe_causality(session: ScorerSession, batch: ProbeBatch, seed: int, normalization: Worst) -> Finding:
    """Score the bases alone, then bases + variants in one call; compare.

    Each scorer call is a separate run of the record's code, and kernels can differ from run to run (seen here: the
    baseline's CPU forward pass, about one run in ten, moves a whole row of a small batch by ~4e-4 nats). So a
    violation counts only when it repeats: after a round that shows one, the pair of calls is made again, up to
    BATCH_ROUNDS rounds, and the verdict is the last round's. A scorer that really adapts to its batch or reads
    ahead does so in every round."""
    started = time.monotonic()
    rounds: list[CausalityRound] = []
    while not rounds or (rounds[-1].violated() and len(rounds) < BATCH_ROUNDS):
        again = " (repeated)" if rounds else ""
        alone = _score_copy(session, batch.bases, normalization, f"probe (bases alone){again}")
        together = _score_copy(session, batch.rows, normalization, f"probe{again}")
        rounds.append(_causality_round(batch, alone, together))
    final = rounds[-1]
    repeated = f" in each of {len(rounds)} runs" if len(rounds) > 1 else ""
    problems = [f"{what}{repeated}; rows must be scored independently (contract §4): the scorer adapts to the batch "
                f"it is given" for ratio, _, what in final.batch if ratio > 1]
    problems += [f"{what}{repeated}: the prediction reads tokens it has not been shown (look-ahead)"
                 for ratio, _, what in final.look_ahead if ratio > 1]
    worst = max((*final.batch, *final.look_ahead), key=lambda d: d[0], default=(0.0, 0.0, ""))
    run_to_run = max((change for ratio, change, _ in (*rounds[0].batch, *rounds[0].look_ahead) if ratio > 1),
                     default=0.0) if len(rounds) > 1 else 0.0
    evidence = {
        "positions_probed": len(final.look_ahead),
        "boundary_positions_probed": sum(1 for v in batch.variants if v.kind == "future" and v.at_boundary),
        "windows": [{"offset": s, "length": int(batch.bases.shape[1]), "boundary_at": b}
                    for s, b in zip(batch.base_starts, batch.boundaries, strict=True)],
        "worst_ratio_to_tolerance": worst[0],
        "worst_change": worst[1],
        "worst_where": worst[2],
        "tolerance": f"{CAUSALITY_RTOL:g} * |log p| + {CAUSALITY_ATOL:g}",
        "cross_document": final.cross_document,
        "calls": 2 * len(rounds),
        "rounds": len(rounds),
        "run_to_run_change": run_to_run,
        "wall_s": round(time.monotonic() - started, 3),
    }
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return Finding("fail", f"seed {seed}: {problems[0]}{more}", evidence)
    varied = (f"; the scorer's output varied between runs by {_fmt(run_to_run)} (consistent again in run "
              f"{len(rounds)})" if len(rounds) > 1 else "")
    return Finding("pass", f"seed {seed}: {len(final.look_ahead)} perturbed positions "
                           f"({evidence['boundary_positions_probed']} at a document boundary), worst change "
                           f"{_fmt(worst[1])}{varied}", evidence)


@dataclass(frozen=True)
class Rescore:
    bpb: float
    total_nats: float
    targets: int
    windows: int
    calls: int
    wall_s: float
    impossible_targets: int  # gold tokens given log-probability -inf


def rescore_stream(session: ScorerSession, val: ValidationSet, seq_len: int, normalization: Worst, seed: int,
                   chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: Callable[[str], None] | None = None,
                   stride: int = 0) -> Rescore:
    """val_bpb of the scorer's own log-probabilities over the whole validation stream (one call per chunk of
    windows; each output memory-mapped and reduced block by block)."""
    started = time.monotonic()
    starts, lengths, firsts = eval_windows(len(val.tokens), seq_len, stride)
    width = int(lengths.max())  # = seq_len, unless the whole stream is shorter than one window
    per_call = max(1, chunk_bytes // (width * val.vocab_size * 4))
    pad_id = val.bos_id if val.bos_id is not None else 0
    total, impossible, calls = 0.0, 0, 0
    for first in range(0, len(starts), per_call):
        chunk_starts, chunk_lengths = starts[first : first + per_call], lengths[first : first + per_call]
        chunk_firsts = firsts[first : first + per_call]
        inputs, targets = window_batch(val.tokens, chunk_starts, chunk_lengths, width, pad_id)
        if progress is not None:
            progress(f"seed {seed}: rescore windows {first + 1}-{first + len(chunk_starts)} of {len(starts)}")
        with session.score(inputs) as logprobs:
            calls += 1
            part, minus_inf = _reduce_chunk(
                logprobs, targets, chunk_lengths, chunk_firsts, normalization,
                lambda r, p, f=first: f"rescore window {f + r} (stream offset {int(starts[f + r])}) position {p}")
            del logprobs  # unmap now: the file is deleted when the block ends, the mapping would outlive it
        total += part
        impossible += minus_inf
    nats = -total
    return Rescore(bpb=bits_per_byte(nats, val.val_bytes), total_nats=nats, targets=int((lengths - firsts).sum()),
                   windows=len(starts), calls=calls, wall_s=time.monotonic() - started, impossible_targets=impossible)


def _reduce_chunk(logprobs: np.ndarray, targets: np.ndarray, lengths: np.ndarray, firsts: np.ndarray,
                  normalization: Worst, label: Callable[[int, int], str]) -> tuple[float, int]:
    """Gold log-prob sum (and -inf count) of one scorer output, folding its normalization into `normalization`;
    block by block, so at most one float64 block is in memory besides the mapped file."""
    rows_per_block = max(1, BLOCK_BYTES // max(1, logprobs[0].size * 8))
    total, impossible = 0.0, 0
    for row in range(0, len(logprobs), rows_per_block):
        block = logprobs[row : row + rows_per_block]
        rows = slice(row, row + rows_per_block)
        part, minus_inf = gold_logprob_sum(block, targets[rows], lengths[rows], firsts[rows])
        total += part
        impossible += minus_inf
        check_normalization(block, normalization, label, row_offset=row)
    return total, impossible


# --- what the record claims ------------------------------------------------------------------------------------------


def seed_log(record: Record, seed: int) -> tuple[str, ParsedLog] | None:
    """The seed's log: the one submission.json names for it, else the log that says `seed:<seed>`, else
    `train_seed<seed>.log`."""
    submission = record.submission
    claimed = submission.seed_results.get(seed) if submission is not None else None
    if claimed is not None and claimed.log in record.logs:
        return claimed.log, record.logs[claimed.log]
    for name in sorted(record.logs):
        if record.logs[name].seed == seed:
            return name, record.logs[name]
    name = f"train_seed{seed}.log"
    return (name, record.logs[name]) if name in record.logs else None


def eval_seq_len(log: ParsedLog) -> int | None:
    """The evaluation window length a log's `hyperparameters:` line names: EVAL_SEQ_LEN, else TRAIN_SEQ_LEN."""
    for key in ("EVAL_SEQ_LEN", "TRAIN_SEQ_LEN"):
        value = log.hyperparameters.get(key)
        if value is not None and str(value).isdigit() and int(value) > 0:
            return int(value)
    return None


def eval_stride(log: ParsedLog) -> int:
    """The stride of the evaluation windows a log's `hyperparameters:` line names (EVAL_STRIDE); 0 (consecutive
    windows) when it names none."""
    value = log.hyperparameters.get("EVAL_STRIDE")
    return int(value) if value is not None and str(value).isdigit() else 0


def seed_claims(record: Record, seed: int, log: tuple[str, ParsedLog] | None) -> dict[str, float]:
    """{source: claimed val_bpb} from the seed's log (its score line) and from submission.json's seed_results."""
    claims: dict[str, float] = {}
    if log is not None and log[1].val_bpb is not None:
        claims[log[0]] = float(log[1].val_bpb)
    submission = record.submission
    result = submission.seed_results.get(seed) if submission is not None else None
    if result is not None and result.val_bpb is not None:
        claims["submission.json"] = float(result.val_bpb)
    return claims


def _judge_rescore(seed: int, rescored: Rescore, claims: Mapping[str, float], val: ValidationSet,
                   log: ParsedLog | None, seq_len: int, stride: int = 0) -> Finding:
    evidence: dict[str, Any] = {
        "rescored_bpb": rescored.bpb, "claims": dict(claims), "targets": rescored.targets,
        "val_bytes": val.val_bytes, "windows": rescored.windows, "seq_len": seq_len,
        "stride": min(stride, seq_len) or seq_len, "calls": rescored.calls,
        "wall_s": round(rescored.wall_s, 3), "impossible_targets": rescored.impossible_targets,
        "total_nats": rescored.total_nats,
    }
    if not claims:
        return Finding("skip", f"seed {seed}: rescored val_bpb {rescored.bpb:.8f}, but neither its log nor "
                               f"submission.json claims a val_bpb to compare with", evidence)
    deltas = {source: rescored.bpb - claim for source, claim in claims.items()}
    evidence["deltas"] = deltas
    wrong = {source: delta for source, delta in deltas.items() if not abs(delta) <= RESCORE_TOLERANCE}
    if not wrong:
        worst = max(abs(d) for d in deltas.values())
        return Finding("pass", f"seed {seed}: rescored {rescored.bpb:.6f} matches the claim (|Δ| {worst:.1e})",
                       evidence)
    source, delta = max(wrong.items(), key=lambda item: abs(item[1]) if math.isfinite(item[1]) else math.inf)
    claim = claims[source]
    hints = []
    if claim > 0 and math.isfinite(rescored.total_nats):
        implied = rescored.total_nats / math.log(2) / claim
        evidence["claim_implies_val_bytes"] = implied
        hints.append(f"the claim implies {implied:,.0f} bytes")
    if log is not None and log.val_bytes is not None and log.val_bytes != val.val_bytes:
        hints.append(f"the log counts val_bytes {log.val_bytes:,}")
    if log is not None and log.manifest_sha256 and log.manifest_sha256 != val.manifest_sha256:
        hints.append("the log names another dataset manifest")
    if rescored.impossible_targets:
        hints.append(f"{rescored.impossible_targets} gold token(s) got probability 0")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return Finding("fail", f"seed {seed}: the scorer's own log-probabilities give val_bpb {rescored.bpb:.8f} over "
                           f"{rescored.targets:,} targets and {val.val_bytes:,} bytes, but {source} claims {claim:.8f} "
                           f"(Δ {delta:+.2e}, tolerance {RESCORE_TOLERANCE:g}){hint}", evidence)


# --- the record ------------------------------------------------------------------------------------------------------


def _skip_all(reason: str, evidence: Mapping[str, Any] | None = None) -> list[CheckResult]:
    message = reason if HUMAN_REVIEW in reason else f"{reason}; {HUMAN_REVIEW}"
    return [CheckResult(check_id, "skip", message, dict(evidence or {})) for check_id in CHECK_IDS]


def _combine(check_id: str, probes: Iterable[SeedProbe], common: Mapping[str, Any]) -> CheckResult:
    findings = [(p.seed, p.findings[check_id]) for p in probes if check_id in p.findings]
    evidence = {**common, "seeds": {str(seed): {"status": f.status, "message": f.message, **f.evidence}
                                    for seed, f in findings}}
    failed = [f for _, f in findings if f.status == "fail"]
    passed = [f for _, f in findings if f.status == "pass"]
    skipped = [f for _, f in findings if f.status == "skip"]
    if failed:
        more = f" (and {len(failed) - 1} more seed(s))" if len(failed) > 1 else ""
        return CheckResult(check_id, "fail", failed[0].message + more, evidence)
    if passed:
        message = "; ".join(f.message for f in passed)
        if skipped:
            message += "; skipped: " + "; ".join(f.message for f in skipped)
        return CheckResult(check_id, "pass", message, evidence)
    reasons = list(dict.fromkeys(f.message for f in skipped)) or ["no seed was probed"]
    return CheckResult(check_id, "skip", "; ".join(reasons), evidence)


def _normalization_finding(seed: int, tally: Worst, vocab_size: int) -> Finding:
    evidence = {"distributions": tally.count, "max_abs_logsumexp": tally.value, "where": tally.where,
                "tolerance": NORMALIZATION_TOLERANCE, "vocab_size": vocab_size}
    if tally.count == 0:
        return Finding("skip", f"seed {seed}: no distribution was checked", evidence)
    if not tally.value <= NORMALIZATION_TOLERANCE:
        return Finding("fail", f"seed {seed}: the {vocab_size} probabilities do not sum to 1 at {tally.where}; "
                               f"|logsumexp| {tally.value:.3g} > {NORMALIZATION_TOLERANCE:g}: not a normalized "
                               f"distribution over the vocabulary", evidence)
    return Finding("pass", f"seed {seed}: max |logsumexp| {tally.value:.1e} over {tally.count:,} distributions",
                   evidence)


def probe_seed(record: Record, seed: int, artifact: Path, val: ValidationSet, *, positions: int, rescore: bool,
               max_rescore_targets: int, timeout_s: float, chunk_bytes: int, rng: np.random.Generator,
               progress: Callable[[str], None] | None = None, env: Mapping[str, str] | None = None,
               hide: Sequence[Path] = ()) -> SeedProbe:
    """All three probes on one artifact. ScorerUnavailable propagates (the record has no usable scorer).

    `hide`: the judge's datasets and records, which a scorer must not read (FAILURES.md D3: training data read
    during evaluation); the sandbox covers them in the child's private mount namespace."""
    assert record.script_path is not None
    probe = SeedProbe(seed)
    log = seed_log(record, seed)
    seq_len = eval_seq_len(log[1]) if log is not None else None
    window = probe_window(seq_len, val.vocab_size, rows=2 + positions + 1, budget_bytes=chunk_bytes)
    normalization = Worst()
    started = time.monotonic()
    # On CPU (float32) even where a GPU is present: a row's numbers must not depend on batch size through bf16
    # kernels, and the CPU track's claims were computed on CPU.
    scorer_env = {**(env or {}), "CUDA_VISIBLE_DEVICES": ""}
    with ScorerSession(record.path, record.script_path, artifact, val.vocab_size, timeout_s=timeout_s,
                       env=scorer_env, hide=hide) as session:
        batch = build_probe_batch(val.tokens, val.vocab_size, val.bos_id, window, positions, rng)
        if progress is not None:
            progress(f"seed {seed}: causality probe ({len(batch.variants)} variants of {len(batch.bases)} windows)")
        try:
            probe.findings["causality"] = _probe_causality(session, batch, seed, normalization)
        except ScorerFailed as problem:
            probe.findings["causality"] = Finding("fail", f"seed {seed}: {problem}")
            probe.findings["normalization"] = Finding("fail", f"seed {seed}: {problem}")
            probe.findings["rescore"] = Finding("skip", f"seed {seed}: not attempted: the scorer failed on the "
                                                        f"probe batch")
            return _finish(probe, session, started)
        probe.findings["rescore"] = _rescore_finding(session, record, seed, log, seq_len, val, normalization,
                                                     rescore=rescore, max_targets=max_rescore_targets,
                                                     chunk_bytes=chunk_bytes, progress=progress)
        probe.findings["normalization"] = _normalization_finding(seed, normalization, val.vocab_size)
        return _finish(probe, session, started)


def _finish(probe: SeedProbe, session: ScorerSession, started: float) -> SeedProbe:
    probe.calls = len(session.calls)
    probe.wall_s = time.monotonic() - started
    for finding in probe.findings.values():
        finding.evidence.setdefault("sandbox", session.network_note)
    return probe


def _rescore_finding(session: ScorerSession, record: Record, seed: int, log: tuple[str, ParsedLog] | None,
                     seq_len: int | None, val: ValidationSet, normalization: Worst, *, rescore: bool,
                     max_targets: int, chunk_bytes: int, progress: Callable[[str], None] | None) -> Finding:
    if not rescore:
        return Finding("skip", f"seed {seed}: rescore not requested")
    if log is None:
        return Finding("skip", f"seed {seed}: no log for this seed; nothing to compare a rescore with")
    if seq_len is None:
        return Finding("skip", f"seed {seed}: {log[0]} names no EVAL_SEQ_LEN or TRAIN_SEQ_LEN in its hyperparameters "
                               f"line, so its evaluation windows are unknown")
    targets = len(val.tokens) - 1
    if targets > max_targets:
        return Finding("skip", f"seed {seed}: the validation set has {targets:,} targets, more than the "
                               f"{max_targets:,} a CPU rescore takes on; rescore it on the track's hardware")
    window_bytes = min(seq_len, targets) * val.vocab_size * 4
    if window_bytes > MAX_WINDOW_BYTES:
        return Finding("skip", f"seed {seed}: one evaluation window ({seq_len} tokens x {val.vocab_size}) is "
                               f"{window_bytes / 1024**2:,.0f} MiB of log-probabilities, more than the "
                               f"{MAX_WINDOW_BYTES / 1024**2:,.0f} MiB one scorer call may return")
    try:
        stride = eval_stride(log[1])
        rescored = rescore_stream(session, val, seq_len, normalization, seed, chunk_bytes, progress, stride)
    except ScorerFailed as problem:
        return Finding("fail", f"seed {seed}: rescore: {problem}")
    return _judge_rescore(seed, rescored, seed_claims(record, seed, log), val, log[1], seq_len, stride)


def probe_record(
    folder: str | Path,
    *,
    seeds: Iterable[int] | None = None,
    positions: int = DEFAULT_POSITIONS,
    rescore: bool = True,
    tracks: Mapping[str, Track] | None = None,
    records_root: str | Path | None = None,
    datasets_root: str | Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_rescore_targets: int = DEFAULT_MAX_RESCORE_TARGETS,
    rng_seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[CheckResult]:
    """Run the normalization, causality and rescore probes on every seed that ships an artifact (or `seeds`).

    RecordError when the record folder, the track table or the track's dataset cannot be read. `rng_seed` fixes
    the probe's random choices (default: fresh each run, reported in the evidence so a run can be
    repeated).
    """
    from tools.records.record import load_record
    from tools.verify.record_checks import load_track_table, resolve_roots

    if positions < 1:
        raise RecordError("--positions", f"must be at least 1, got {positions}")
    root, data = resolve_roots(records_root, datasets_root)
    record = load_record(folder, root)
    track = load_track_table(root, tracks).get(record.track_id)
    if track is None:
        return _skip_all(f"track {record.track_id!r} is not in tracks.toml, so its dataset is unknown")
    if record.script_path is None:
        return _skip_all("the record has no train_gpt.py to score with")
    try:
        script_text = read_regular_file(record.script_path, 10_000_000, follow_symlinks=False)[0].decode("utf-8", "replace")
    except (OSError, ValueError) as problem:
        return _skip_all(f"train_gpt.py cannot be read ({getattr(problem, 'strerror', None) or problem})")
    if not has_score_entry_point(script_text):
        return _skip_all("train_gpt.py exposes no scoring entry point (`score --artifact A --tokens IN --out OUT`, "
                         "contract §4)")
    wanted = sorted(record.artifacts) if seeds is None else sorted(set(seeds))
    missing = [seed for seed in wanted if seed not in record.artifacts]
    if not record.artifacts:
        return _skip_all("the record ships no artifact (final_model_seed<SEED>.*)")
    dataset_folder = Path(data) / track.dataset
    if not (dataset_folder / "manifest.json").is_file():
        return _skip_all(f"dataset {track.dataset!r} is not prepared under {data}; the probes need its tokenizer "
                         f"size and validation tokens")
    val = load_validation_set(dataset_folder)
    rng_seed = int.from_bytes(os.urandom(4), "little") if rng_seed is None else rng_seed
    rng = np.random.default_rng(rng_seed)
    common = {"rng_seed": rng_seed, "dataset": val.dataset, "vocab_size": val.vocab_size,
              "seeds_without_artifact": missing}
    probes: list[SeedProbe] = []
    for seed in wanted:
        if seed in missing:
            skipped = SeedProbe(seed)
            for check_id in CHECK_IDS:
                skipped.findings[check_id] = Finding("skip", f"seed {seed}: no artifact final_model_seed{seed}.*")
            probes.append(skipped)
            continue
        try:
            probes.append(probe_seed(record, seed, record.artifacts[seed], val, positions=positions, rescore=rescore,
                                          max_rescore_targets=max_rescore_targets, timeout_s=timeout_s,
                                          chunk_bytes=chunk_bytes, rng=rng, progress=progress, env=track.env,
                                          hide=(Path(data), Path(root))))
        except ScorerUnavailable as problem:
            return _skip_all(str(problem), common)
    return [_combine(check_id, probes, common) for check_id in CHECK_IDS]

"""Is the record's model a real, causal distribution, and does it earn the score it claims?

Three verdicts, all from one set of calls to the record's own scoring entry point (docs/CONTRACTS.md §4), each a
sandboxed child process (tools.verify.probes.scorer); the judge receives plain arrays and does all the arithmetic
itself, in float64. The score and its proof come from the same calls (tools.verify.probes.plan): every call has the
same shape, scores evaluation windows and carries probe rows (copies of windows another call scores, exact or with
the tokens after a judge-chosen position replaced), so a scorer cannot tell a probe from scoring.

- `normalization`: at every position of every call, logsumexp over the whole vocabulary is 0 within 1e-3.
  A mixture that renormalizes only the gold token (docs/FAILURES.md B1/B2) is caught because the judge asks for the
  full distribution, never for the gold token's probability alone.
- `causality`: a probe's log-probabilities at positions <= t equal its original's (all positions for an exact
  copy, which sits among different rows: a row must not depend on its batch, contract §4). Positions t are drawn
  by the judge's private RNG among scored positions, always including both sides of a document boundary
  (`[a..., BOS, b...]`: the last token of a and the BOS itself), so a leak only at boundaries (A7) is reachable.
  Conditioning across a document boundary is legitimate and is only reported ("past" probe). Small differences
  are asked again (tools.verify.probes.run: run-to-run variance of honest kernels); large ones fail at once.
- `rescore`: val_bpb from the same calls' log-probabilities over the full validation stream, windowed as the
  baseline evaluates it (windows of L = the log's EVAL_SEQ_LEN, else TRAIN_SEQ_LEN, starting every EVAL_STRIDE
  tokens, consecutive when the log names none; each window sees only its own tokens and scores only targets no
  earlier window scored; every token after the first is a target exactly once; the short last window padded),
  divided by the manifest's val_bytes; it must match the seed's claims (log and submission.json) within 1e-4.
  When the rescore cannot run (no log, no sequence length, too large for a CPU, or not requested), a random sample
  of evaluation windows is scored instead, with the same probes, and `rescore` is skipped with the reason.

Every seed that ships `final_model_seed<SEED>.*` is probed (the scorer always on CPU, float32). Cost on the CPU
track: bench/bench_probes.py. The judge's memory is about one call's output (memory-mapped), a 32 MiB float64
block and the compared positions of about two calls' probe rows.

Entry point: `probe_record(folder, ...) -> list[CheckResult]` (ids `normalization`, `causality`, `rescore`).
A record whose script has no `score` command, or that ships no artifact, gets `skip` with the reason and a note
that a human must review it. On a track the run service scores (`scored_by = "service"`) every check is `skip`,
"not applicable on this track": the service probed each exported model inside its own scoring calls. The child
sees only its private copy of the record and its input tokens, read-only (tools.verify.sandbox).
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

from data import formats
from tools.records.model import CheckResult, ParsedLog, Record, RecordError, Status, Track
from tools.records.paths import read_regular_file
from tools.records.record import load_record
from tools.verify.checks.common import not_applicable
from tools.verify.checks.verdict import load_track_table, resolve_roots
from tools.verify.probes.arithmetic import (  # noqa: F401  (re-exported: the probes' arithmetic, for callers and tests)
    CAUSALITY_ATOL,
    CAUSALITY_RTOL,
    Worst,
    bits_per_byte,
    check_normalization,
    drift,
    gold_logprob_sum,
    logsumexp,
)
from tools.verify.probes.plan import Plan, eval_windows, plan_calls
from tools.verify.probes.run import BATCH_ROUNDS, Comparison, PlanRun, describe, run_plan, violations  # noqa: F401
from tools.verify.probes.scorer import ScorerFailed, ScorerSession, ScorerUnavailable, has_score_entry_point

CHECK_IDS = ("normalization", "causality", "rescore")
NORMALIZATION_TOLERANCE = 1e-3  # |logsumexp| over the vocabulary, nats
RESCORE_TOLERANCE = 1e-4  # |rescored val_bpb - claimed val_bpb|
DEFAULT_POSITIONS = 16  # the fewest probe rows per artifact (each call also gets its share, probe_plan)
SAMPLE_MIN_WINDOWS = 8  # windows scored when only the probes run (no rescore)
PROBE_WINDOW_MAX = 1024  # sampled windows are at most this long (the model's own sequence length if shorter)
PROBE_WINDOW_UNKNOWN_SEQ = 128  # window length when the log names no sequence length
DEFAULT_CHUNK_BYTES = 256 * 1024**2  # output of one call (float32): bounds the child's and our memory
DEFAULT_MAX_RESCORE_TARGETS = 2_000_000  # beyond this a CPU rescore is impractical; the GPU runner's job
DEFAULT_TIMEOUT_S = 600.0  # per scorer call
MAX_WINDOW_BYTES = 1024**3  # one evaluation window's float32 log-probabilities (the output of one call, at least)
HUMAN_REVIEW = "a human must review the model's distributions"

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
    """One shard's tokens, read by the data pipeline's own reader (data.formats, contract §1); RecordError naming
    the file when it is not a well-formed shard."""
    try:
        return formats.read_shard(path)
    except formats.ShardFormatError as problem:
        raise RecordError(path, str(problem).removeprefix(f"{path}: ")) from None


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


@dataclass(frozen=True)
class Rescore:
    bpb: float
    total_nats: float
    targets: int
    windows: int
    calls: int
    wall_s: float
    impossible_targets: int  # gold tokens given log-probability -inf


@dataclass(frozen=True)
class Scope:
    """What one seed's calls score: every evaluation window (`full`: the rescore) or a sample (probes only)."""

    seq_len: int
    stride: int
    full: bool
    no_rescore: str | None = None  # why not every window (the rescore's skip message)


def probe_window(seq_len: int | None, vocab_size: int, rows: int, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Window length when only a sample is scored: the model's evaluation length (PROBE_WINDOW_UNKNOWN_SEQ when the
    log does not say), at most PROBE_WINDOW_MAX, and short enough that `rows` float32 rows of `vocab_size` fit
    `budget_bytes` (a large vocabulary must not make the probe's output huge)."""
    fits = budget_bytes // max(1, rows * vocab_size * 4)
    return max(2, min(seq_len or PROBE_WINDOW_UNKNOWN_SEQ, PROBE_WINDOW_MAX, fits))


def scoring_scope(seed: int, log: tuple[str, ParsedLog] | None, val: ValidationSet, *, rescore: bool,
                  max_targets: int, chunk_bytes: int) -> Scope:
    """Full rescore when it is wanted, comparable and affordable; otherwise a sample, and the reason."""
    seq_len = eval_seq_len(log[1]) if log is not None else None
    stride = eval_stride(log[1]) if log is not None else 0
    targets = len(val.tokens) - 1
    reason = None
    if not rescore:
        reason = "rescore not requested"
    elif log is None:
        reason = "no log for this seed; nothing to compare a rescore with"
    elif seq_len is None:
        reason = (f"{log[0]} names no EVAL_SEQ_LEN or TRAIN_SEQ_LEN in its hyperparameters line, so its evaluation "
                  f"windows are unknown")
    elif targets > max_targets:
        reason = (f"the validation set has {targets:,} targets, more than the {max_targets:,} a CPU rescore takes "
                  f"on; rescore it on the track's hardware")
    elif min(seq_len, targets) * val.vocab_size * 4 > MAX_WINDOW_BYTES:
        window_bytes = min(seq_len, targets) * val.vocab_size * 4
        reason = (f"one evaluation window ({seq_len} tokens x {val.vocab_size}) is {window_bytes / 1024**2:,.0f} "
                  f"MiB of log-probabilities, more than the {MAX_WINDOW_BYTES / 1024**2:,.0f} MiB one scorer call "
                  f"may return")
    if reason is None:
        assert seq_len is not None
        return Scope(seq_len, stride, True)
    sample_len = probe_window(seq_len, val.vocab_size, rows=2, budget_bytes=min(chunk_bytes, MAX_WINDOW_BYTES))
    return Scope(sample_len, stride if sample_len == seq_len else 0, False, f"seed {seed}: {reason}")


def plan_seed(val: ValidationSet, scope: Scope, *, positions: int, chunk_bytes: int,
              rng: np.random.Generator) -> Plan:
    """The calls for one seed: every evaluation window, or (probes only) a random sample of them."""
    starts, lengths, firsts = eval_windows(len(val.tokens), scope.seq_len, scope.stride)
    if not scope.full:
        size = min(len(starts), max(positions, SAMPLE_MIN_WINDOWS))
        chosen = np.sort(rng.choice(len(starts), size=size, replace=False))
        starts, lengths, firsts = starts[chosen], lengths[chosen], firsts[chosen]
    width = int(lengths.max())  # = seq_len, unless the whole stream is shorter than one window
    max_rows = chunk_bytes // max(1, width * val.vocab_size * 4)
    return plan_calls(val.tokens, starts, lengths, firsts, seq_len=width, vocab_size=val.vocab_size,
                      bos_id=val.bos_id, max_rows=max_rows, min_probes=positions, rng=rng)


def causality_finding(seed: int, plan: Plan, run: PlanRun) -> Finding:
    moved = violations(plan, run.comparisons)
    repeated = f" in each of {run.rounds} runs" if run.rounds > 1 else ""
    problems = [f"{describe(plan, k, run.comparisons[k])}{repeated}; rows must be scored independently (contract "
                f"§4): the scorer adapts to the batch it is given" for k in moved if plan.probes[k].kind == "copy"]
    problems += [f"{describe(plan, k, run.comparisons[k])}{repeated}: the prediction reads tokens it has not been "
                 f"shown (look-ahead)" for k in moved if plan.probes[k].kind == "future"]
    checked = {k: c for k, c in run.comparisons.items() if plan.probes[k].kind != "past"}
    worst_k = max(checked, key=lambda k: checked[k].ratio, default=None)
    worst = checked[worst_k] if worst_k is not None else Comparison(0.0, 0.0, 0, 0)
    futures = [p for p in plan.probes if p.kind == "future"]
    evidence: dict[str, Any] = {
        "positions_probed": len(futures),
        "boundary_positions_probed": sum(1 for p in futures if p.at_boundary),
        "copies_probed": sum(1 for p in plan.probes if p.kind == "copy"),
        "calls": run.calls,
        "scoring_calls": plan.calls,
        "call_shape": [plan.rows, plan.seq_len],
        "probe_rows": len(plan.probes),
        "worst_ratio_to_tolerance": worst.ratio,
        "worst_change": worst.change,
        "worst_where": describe(plan, worst_k, worst) if worst_k is not None else "",
        "tolerance": f"{CAUSALITY_RTOL:g} * |log p| + {CAUSALITY_ATOL:g}",
        "cross_document": _cross_document(plan, run),
        "rounds": run.rounds,
        "run_to_run_change": max((c.change for c in run.first_round.values()), default=0.0),
        "wall_s": round(run.wall_s, 3),
    }
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return Finding("fail", f"seed {seed}: {problems[0]}{more}", evidence)
    varied = (f"; the scorer's output varied between runs by {_fmt(evidence['run_to_run_change'])} (consistent "
              f"again in run {run.rounds})" if run.rounds > 1 else "")
    return Finding("pass", f"seed {seed}: {len(futures)} perturbed positions ({evidence['boundary_positions_probed']} "
                           f"at a document boundary) and {evidence['copies_probed']} copies, inside all "
                           f"{plan.calls} scoring calls; worst change {_fmt(worst.change)}{varied}", evidence)


def _cross_document(plan: Plan, run: PlanRun) -> dict[str, Any]:
    """Legitimate context, reported only: does document b's prediction move when document a changes?"""
    for k, probe in enumerate(plan.probes):
        if probe.kind == "past" and k in run.comparisons:
            comparison = run.comparisons[k]
            return {"boundary_offset": int(plan.starts[probe.window]) + probe.position,
                    "later_document_reads_earlier": comparison.moved, "max_change": comparison.change}
    return {}


def rescore_of(plan: Plan, run: PlanRun, val: ValidationSet) -> Rescore:
    nats = -run.gold_sum
    return Rescore(bpb=bits_per_byte(nats, val.val_bytes), total_nats=nats,
                   targets=int((plan.lengths - plan.firsts).sum()), windows=len(plan.starts), calls=run.calls,
                   wall_s=run.wall_s, impossible_targets=run.impossible)


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
    """All three probes on one artifact, from one set of same-shaped calls. ScorerUnavailable propagates (the record
    has no usable scorer). `hide` is kept for callers: the sandbox shows the child only its copy and its tokens."""
    assert record.script_path is not None
    probe = SeedProbe(seed)
    log = seed_log(record, seed)
    scope = scoring_scope(seed, log, val, rescore=rescore, max_targets=max_rescore_targets, chunk_bytes=chunk_bytes)
    plan = plan_seed(val, scope, positions=positions, chunk_bytes=chunk_bytes, rng=rng)
    normalization = Worst()
    started = time.monotonic()
    # On CPU (float32) even where a GPU is present: a row's numbers must not depend on batch size through bf16
    # kernels, and the CPU track's claims were computed on CPU.
    scorer_env = {**(env or {}), "CUDA_VISIBLE_DEVICES": ""}
    with ScorerSession(record.path, record.script_path, artifact, val.vocab_size, timeout_s=timeout_s,
                       env=scorer_env, hide=hide) as session:
        try:
            run = run_plan(session.score, plan, val.tokens, normalization, progress, label=f"seed {seed}: ")
        except ScorerFailed as problem:
            failed = Finding("fail", f"seed {seed}: {problem}")
            probe.findings = {"normalization": failed, "causality": failed,
                              "rescore": Finding("fail", f"seed {seed}: rescore: {problem}") if scope.full
                              else Finding("skip", scope.no_rescore or "")}
            return _finish(probe, session, started)
    probe.findings["normalization"] = _normalization_finding(seed, normalization, val.vocab_size)
    probe.findings["causality"] = causality_finding(seed, plan, run)
    if scope.full:
        stride = min(scope.stride, scope.seq_len) or scope.seq_len
        probe.findings["rescore"] = _judge_rescore(seed, rescore_of(plan, run, val), seed_claims(record, seed, log),
                                                   val, log[1] if log else None, scope.seq_len, stride)
    else:
        probe.findings["rescore"] = Finding("skip", scope.no_rescore or f"seed {seed}: rescore not requested")
    return _finish(probe, session, started)


def _finish(probe: SeedProbe, session: ScorerSession, started: float) -> SeedProbe:
    probe.calls = len(session.calls)
    probe.wall_s = time.monotonic() - started
    for finding in probe.findings.values():
        finding.evidence.setdefault("sandbox", session.network_note)
    return probe


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

    if positions < 1:
        raise RecordError("--positions", f"must be at least 1, got {positions}")
    root, data = resolve_roots(records_root, datasets_root)
    record = load_record(folder, root)
    track = load_track_table(root, tracks).get(record.track_id)
    if track is None:
        return _skip_all(f"track {record.track_id!r} is not in tracks.toml, so its dataset is unknown")
    service = not_applicable(track, "the service scored each seed's exported model itself, with its "
                                    "normalization, causality and finite checks inside its own scoring calls "
                                    "(each log's `service:` line), and the logged val_bpb is that score")
    if service is not None:
        return [CheckResult(check_id, "skip", service, {"not_applicable": True}) for check_id in CHECK_IDS]
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

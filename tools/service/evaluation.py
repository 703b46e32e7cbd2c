"""The service's score of a run: which validation windows, how they are spread over calls with their probes, and
the verdict (val_bpb, normalization, causality) from the same calls.

Windows (the challenge contract): the validation works' bytes, concatenated in name order, cut into
non-overlapping 256-byte windows; window k feeds x = BOS + bytes[256k : 256k + 255] and scores every one of its
bytes y = bytes[256k : 256k + 256] (the last window is shorter and padded), so every validation byte is a target
exactly once and val_bpb = total cross-entropy in bits / the number of validation bytes.

In the terms of tools.verify.probes.plan the windows live in a "stream" where window k occupies
[BOS, y_0 .. y_255] at offset 257k: call_rows then gives inputs stream[s : s + n] and targets stream[s + 1 : s + 1 + n]
unchanged, and the plan's probe rows (exact copies, and copies with the bytes after a private random position t
replaced by other validation text) are drawn from the same stream, so they look like any window.

`judge` is pure; `evaluate_export` runs the plan through the sandboxed scorer (tools.service.scorer).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.verify.probes.arithmetic import Worst, bits_per_byte
from tools.verify.probes.plan import Plan, plan_calls
from tools.verify.probes.run import PlanRun, describe, run_plan, violations
from tools.verify.probes.scorer import ScorerFailed

SEQ_LEN = 256
VOCAB_SIZE = 257
BOS = 256
MIN_PROBES = 24  # probe rows in all, at least (each call also carries 1/8 of its rows as probes)
NORMALIZATION_TOLERANCE = 1e-6  # nats: the service applies log-softmax itself, so only a broken row (NaN) fails


@dataclass(frozen=True)
class Layout:
    stream: np.ndarray  # int64: per window, BOS then its bytes
    starts: np.ndarray
    lengths: np.ndarray  # real input tokens = scored bytes of each window
    firsts: np.ndarray  # first scored position: 0 for every window (non-overlapping)
    val_bytes: int


def eval_layout(val: np.ndarray, seq_len: int = SEQ_LEN, bos: int = BOS) -> Layout:
    """The non-overlapping windows of `val` (uint8 bytes) in plan form (see the module docstring)."""
    val = np.asarray(val, dtype=np.int64)
    if len(val) == 0:
        raise ValueError("no validation bytes")
    n_windows = -(-len(val) // seq_len)
    stride = seq_len + 1
    stream = np.full(n_windows * stride, bos, dtype=np.int64)
    lengths = np.zeros(n_windows, dtype=np.int64)
    for k in range(n_windows):
        chunk = val[k * seq_len : (k + 1) * seq_len]
        stream[k * stride + 1 : k * stride + 1 + len(chunk)] = chunk
        lengths[k] = len(chunk)
    starts = np.arange(n_windows, dtype=np.int64) * stride
    return Layout(stream, starts, lengths, np.zeros(n_windows, dtype=np.int64), int(len(val)))


def make_plan(layout: Layout, rng: np.random.Generator, max_rows: int) -> Plan:
    return plan_calls(layout.stream, layout.starts, layout.lengths, layout.firsts, seq_len=SEQ_LEN,
                      vocab_size=VOCAB_SIZE, bos_id=BOS, max_rows=max_rows, min_probes=MIN_PROBES, rng=rng)


@dataclass(frozen=True)
class Check:
    id: str  # "normalization" | "causality" | "finite" | "scoring"
    passed: bool
    message: str

    def to_dict(self) -> dict:
        return {"id": self.id, "passed": self.passed, "message": self.message}


@dataclass(frozen=True)
class Evaluation:
    val_bpb: float | None  # None when the model could not be scored at all
    checks: tuple[Check, ...]
    calls: int = 0
    rounds: int = 1
    probes: int = 0
    windows: int = 0
    wall_s: float = 0.0
    detail: dict = field(default_factory=dict)
    cancelled: bool = False  # the run ended (exited, timed out, was killed) while its model was being scored

    @property
    def passed(self) -> bool:
        return self.val_bpb is not None and all(check.passed for check in self.checks)

    @property
    def failure(self) -> str:
        """One line: the first failed check, or "" when it passed."""
        failed = [c for c in self.checks if not c.passed]
        return f"{failed[0].id} check failed: {failed[0].message}" if failed else ""

    def to_dict(self) -> dict:
        return {"val_bpb": self.val_bpb, "passed": self.passed, "checks": [c.to_dict() for c in self.checks],
                "calls": self.calls, "rounds": self.rounds, "probes": self.probes, "windows": self.windows,
                "wall_s": round(self.wall_s, 3), "cancelled": self.cancelled, **self.detail}


def failed_evaluation(check_id: str, message: str, wall_s: float = 0.0, cancelled: bool = False) -> Evaluation:
    return Evaluation(None, (Check(check_id, False, message),), wall_s=wall_s, cancelled=cancelled)


def judge(plan: Plan, run: PlanRun, normalization: Worst, val_bytes: int) -> Evaluation:
    """The verdict of one completed plan: the service's val_bpb and its three checks (pure)."""
    total_nats = -run.gold_sum
    val_bpb = math.inf if run.impossible else bits_per_byte(total_nats, val_bytes)
    norm_ok = normalization.value <= NORMALIZATION_TOLERANCE  # False for NaN too
    checks = [Check("normalization", norm_ok,
                    f"worst |logsumexp| {normalization.value:.3g} over {normalization.count} positions"
                    + ("" if norm_ok else f" at {normalization.where}"))]
    moved = violations(plan, run.comparisons)
    if moved:
        worst = max(moved, key=lambda k: run.comparisons[k].ratio)
        checks.append(Check("causality", False, f"{len(moved)} of {len(run.comparisons)} probes moved; "
                                                f"{describe(plan, worst, run.comparisons[worst])}"))
    else:
        checks.append(Check("causality", True, f"{len(run.comparisons)} probes (copies and changed futures) "
                                               "matched their originals"))
    checks.append(Check("finite", run.impossible == 0,
                        "every validation byte has a non-zero probability" if not run.impossible
                        else f"{run.impossible} validation bytes got probability 0"))
    return Evaluation(val_bpb, tuple(checks), calls=run.calls, rounds=run.rounds, probes=len(plan.probes),
                      windows=len(plan.starts), wall_s=run.wall_s,
                      detail={"val_loss_nats_per_byte": total_nats / val_bytes, "val_bytes": val_bytes,
                              "rows_per_call": plan.rows})


def evaluate_export(model: Path, batch_size: int, layout: Layout, work_dir: Path, *, max_rows: int,
                    call_timeout_s: float, unisolated: bool = False, cancelled: Callable[[], bool] = lambda: False,
                    progress: Callable[[str], None] | None = None, seed: int | None = None) -> Evaluation:
    """Score the exported model at `model` over the whole validation set, probes included. Never raises for
    anything the model does: a model that cannot be scored gives an Evaluation with a failed "scoring" check."""
    from tools.service.scorer import Cancelled, ExportScorer

    started = time.monotonic()
    rng = np.random.default_rng(secrets.randbits(64) if seed is None else seed)  # private: a new plan per run
    plan = make_plan(layout, rng, max_rows)
    scorer = ExportScorer(model, batch_size, VOCAB_SIZE, work_dir, timeout_s=call_timeout_s, unisolated=unisolated,
                          cancelled=cancelled)
    normalization = Worst()
    try:
        run = run_plan(scorer.score, plan, layout.stream, normalization, progress=progress)
    except Cancelled as stop:
        return failed_evaluation("scoring", str(stop), time.monotonic() - started, cancelled=True)
    except ScorerFailed as problem:
        return failed_evaluation("scoring", str(problem), time.monotonic() - started)
    return judge(plan, run, normalization, layout.val_bytes)

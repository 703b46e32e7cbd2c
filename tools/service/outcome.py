"""How a run ended, decided from facts (pure): what the sandbox said, whether and how the service scored the model,
and what the code printed.

The score is always the service's. What the code printed is kept as `reported` (its last JSON line with a
`val_bpb`), and flagged when its val_bpb differs from the service's by more than REPORTED_TOLERANCE.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from tools.service.evaluation import Evaluation

REPORTED_TOLERANCE = 1e-4
MAX_REPORTED_LINE = 8192  # characters: longer lines are not the results line
MAX_REPORTED_KEYS = 64

QUEUED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT = "queued", "running", "succeeded", "failed", "timed_out"
FINISHED = (SUCCEEDED, FAILED, TIMED_OUT)


def parse_reported(line: str) -> dict | None:
    """The line as a results dict (scalars only) if it is a JSON object with a `val_bpb`, else None."""
    line = line.strip()
    if not (line.startswith("{") and line.endswith("}")) or len(line) > MAX_REPORTED_LINE:
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if not isinstance(value, dict) or "val_bpb" not in value:
        return None
    scalars = {str(k)[:64]: v for k, v in value.items()
               if isinstance(v, (int, float, str, bool)) or v is None}
    kept = dict(list(scalars.items())[:MAX_REPORTED_KEYS])
    for key, v in kept.items():
        if isinstance(v, str):
            kept[key] = v[:256]
        elif isinstance(v, float) and not math.isfinite(v):
            kept[key] = str(v)  # JSON has no NaN or infinity
    return kept


def reported_number(reported: dict | None, key: str) -> float | None:
    value = (reported or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class ChildEnd:
    """What the sandbox reported about the training child."""

    returncode: int | None
    timed_out: bool
    killed: str  # "" or the limit it was killed for ("output", "disk")
    wall_s: float
    last_line: str = ""


@dataclass(frozen=True)
class Decision:
    status: str
    reason: str
    val_bpb: float | None
    reported_val_bpb: float | None
    reported_mismatch: bool
    flags: tuple[str, ...] = field(default_factory=tuple)


def decide(child: ChildEnd, evaluation: Evaluation | None, reported: dict | None, limit_s: float,
           refused: str = "") -> Decision:
    """The run's status and one-line reason. `refused`: why the service would not score an evaluation request
    (e.g. it came after the training budget); `evaluation`: None when none was requested (or refused)."""
    val_bpb = evaluation.val_bpb if evaluation is not None and evaluation.val_bpb is not None else None
    if val_bpb is not None and not math.isfinite(val_bpb):
        val_bpb = None
    claimed = reported_number(reported, "val_bpb")
    mismatch = claimed is not None and (val_bpb is None or abs(claimed - val_bpb) > REPORTED_TOLERANCE)
    flags = ("reported_val_bpb_differs",) if mismatch else ()

    def result(status: str, reason: str) -> Decision:
        return Decision(status, reason, val_bpb, claimed, mismatch, flags)

    said = f": {child.last_line[:300]}" if child.last_line else ""
    if refused:
        return result(FAILED, refused)
    cut_short = evaluation is not None and evaluation.cancelled  # the child's end stopped the scoring
    if evaluation is not None and not evaluation.passed and not cut_short:
        return result(FAILED, evaluation.failure or "the model could not be scored")
    if child.killed:
        return result(FAILED, f"killed: over the sandbox's {child.killed} limit")
    if child.timed_out:
        when = ("while its model was being scored" if cut_short else "after its evaluation"
                if evaluation is not None else "before it asked for its evaluation")
        return result(TIMED_OUT, f"ran past the time limit of {limit_s:g} s ({when})")
    if cut_short:
        return result(FAILED, f"exited with code {child.returncode} before its evaluation finished{said}")
    if evaluation is None:
        if child.returncode == 0:
            return result(FAILED, "the code exited without calling prepare.evaluate_bpb")
        return result(FAILED, f"exited with code {child.returncode} before its evaluation{said}")
    if child.returncode != 0:
        return result(FAILED, f"exited with code {child.returncode} after its evaluation{said}")
    if mismatch:
        return result(SUCCEEDED, f"scored by the service; the code printed val_bpb {claimed:.6f}, which is not the "
                                 f"service's {val_bpb:.6f} (flagged)")
    return result(SUCCEEDED, "scored by the service")

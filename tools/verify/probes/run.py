"""Run a plan (tools.verify.probes.plan) through a record's scorer: the score, the normalization and the causality
comparisons, all from the same calls.

Each call's output is memory-mapped and reduced block by block: the gold log-probabilities of its scored windows
are summed, every distribution's logsumexp is folded into the normalization tally, and the compared positions of
its probe rows and of its probed windows are kept until the other side of each comparison arrives (at most about
two calls' worth of probe rows).

Run-to-run variance: every call is a separate run of the record's code, and an honest CPU kernel can differ
slightly between runs. A comparison that moves by more than the tolerance but by no more than FLAKE_CEILING is
asked again: the calls involved are run again (same inputs; the scorer cannot tell a re-run from a first run, the
call folders have random names), up to BATCH_ROUNDS rounds, and it counts only if it moves in every round. A
larger move fails at once: no honest kernel moves a float32 log-probability by 0.01 nats between runs, and the
scored call is the one that counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tools.verify.probes.arithmetic import Worst, check_normalization, drift, gold_logprob_sum
from tools.verify.probes.plan import Plan, Probe, call_rows

BATCH_ROUNDS = 3  # a small violation fails only when it repeats in this many runs of its calls
FLAKE_CEILING = 1e-2  # nats: a larger change between a probe and its original is never run-to-run variance


@dataclass(frozen=True)
class Comparison:
    ratio: float  # worst |change| / allowed change; above 1: moved
    change: float  # that |change|, nats
    position: int  # where, in the row
    token: int

    @property
    def moved(self) -> bool:
        return self.ratio > 1


@dataclass
class PlanRun:
    """What the calls showed: the score's raw sums and every comparison (the last round's for re-run ones)."""

    gold_sum: float = 0.0  # sum of the gold tokens' log-probabilities over every scored position
    impossible: int = 0  # gold tokens given -inf
    calls: int = 0
    rounds: int = 1
    comparisons: dict[int, Comparison] = field(default_factory=dict)
    first_round: dict[int, Comparison] = field(default_factory=dict)  # for the evidence when a re-run cleared it
    wall_s: float = 0.0


Score = Callable[[np.ndarray], Any]  # ScorerSession.score: a context manager yielding [B, T, V] log-probabilities


def compare(probe: Probe, original: np.ndarray, copy: np.ndarray) -> Comparison:
    ratio, change, at = drift(original, copy)
    position, token = (at[0], at[1]) if len(at) == 2 else (0, 0)
    offset = probe.position if probe.kind == "past" else 0
    return Comparison(ratio, change, position + offset, token)


def run_plan(score: Score, plan: Plan, stream: np.ndarray, normalization: Worst,
             progress: Callable[[str], None] | None = None, label: str = "") -> PlanRun:
    """Every call of the plan once, then the re-run rounds for small violations."""
    started = time.monotonic()
    run = PlanRun()
    pending: dict[int, tuple[str, np.ndarray]] = {}
    for call in range(plan.calls):
        if progress is not None:
            progress(f"{label}call {call + 1} of {plan.calls} ({plan.rows} rows x {plan.seq_len} tokens)")
        part, minus_inf, sides = _score_call(score, plan, call, stream, normalization)
        run.gold_sum += part
        run.impossible += minus_inf
        run.calls += 1
        _pair(plan, sides, pending, run.comparisons)
    assert not pending, "every probe's original is scored by some call"
    _rerun_small_violations(score, plan, stream, run, progress, label)
    run.wall_s = time.monotonic() - started
    return run


def _pair(plan: Plan, sides: list[tuple[int, str, np.ndarray]], pending: dict[int, tuple[str, np.ndarray]],
          comparisons: dict[int, Comparison]) -> None:
    """Hold the first side of each comparison; compare when its other side arrives."""
    for k, side, values in sides:
        if k not in pending:
            pending[k] = (side, values)
            continue
        _, other = pending.pop(k)
        original, copy = (values, other) if side == "original" else (other, values)
        comparisons[k] = compare(plan.probes[k], original, copy)


def violations(plan: Plan, comparisons: dict[int, Comparison]) -> list[int]:
    """Probes whose compared positions moved ("past" probes excepted: reading the previous document is allowed)."""
    return [k for k, c in comparisons.items() if c.moved and plan.probes[k].kind != "past"]


def _score_call(score: Score, plan: Plan, call: int, stream: np.ndarray, normalization: Worst,
                only: set[int] | None = None) -> tuple[float, int, list[tuple[int, str, np.ndarray]]]:
    """One call: (gold sum, -inf count, [(probe id, "probe" | "original", compared values)]). With `only`, just
    those probes' sides (a re-run: its score and normalization were already counted)."""
    inputs, targets, lengths, firsts = call_rows(plan, call, stream)
    names = _row_names(plan, call)
    sides: list[tuple[int, str, np.ndarray]] = []
    part, minus_inf = 0.0, 0
    with score(inputs) as logprobs:
        if only is None:
            part, minus_inf = reduce_call(logprobs, targets, lengths, firsts, normalization,
                                          lambda row, position: f"{names[row]} position {position}")
        for k in plan.probes_in(call):
            if only is None or k in only:
                sides.append((k, "probe", _compared(plan, k, logprobs, plan.probes[k].row)))
        for k in plan.probes_of_windows_in(call):
            if only is None or k in only:
                sides.append((k, "original", _compared(plan, k, logprobs, int(plan.window_row[plan.probes[k].window]))))
        del logprobs  # unmap before the file goes
    return part, minus_inf, sides


def _compared(plan: Plan, k: int, logprobs: np.ndarray, row: int) -> np.ndarray:
    """A copy of the positions probe k compares, cut to its window's real length (both rows are padded alike)."""
    probe = plan.probes[k]
    return np.array(logprobs[row, probe.compared(int(plan.lengths[probe.window]))])


def _row_names(plan: Plan, call: int) -> dict[int, str]:
    names = {int(plan.window_row[w]): f"window {w} (stream offset {int(plan.starts[w])})"
             for w in plan.windows_in(call).tolist()}
    for k in plan.probes_in(call):
        probe = plan.probes[k]
        names[probe.row] = f"probe row {probe.row} of call {call} (a {probe.kind} copy of window {probe.window})"
    return names


def reduce_call(logprobs: np.ndarray, targets: np.ndarray, lengths: np.ndarray, firsts: np.ndarray,
                normalization: Worst, label: Callable[[int, int], str]) -> tuple[float, int]:
    """Gold log-prob sum (and -inf count) of one scorer output, folding every position's normalization into
    `normalization`; block by block, so at most one float64 block is in memory besides the mapped file."""
    from tools.verify.probes.arithmetic import BLOCK_BYTES

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


def _rerun_small_violations(score: Score, plan: Plan, stream: np.ndarray, run: PlanRun,
                            progress: Callable[[str], None] | None, label: str) -> None:
    moved = violations(plan, run.comparisons)
    if not moved or any(run.comparisons[k].change > FLAKE_CEILING for k in moved):
        return
    run.first_round = {k: run.comparisons[k] for k in moved}
    while moved and run.rounds < BATCH_ROUNDS:
        run.rounds += 1
        calls = sorted({plan.probes[k].call for k in moved} | {int(plan.window_call[plan.probes[k].window])
                                                                for k in moved})
        if progress is not None:
            progress(f"{label}a comparison moved slightly; running calls {', '.join(str(c + 1) for c in calls)} "
                     f"again (round {run.rounds} of {BATCH_ROUNDS})")
        pending: dict[int, tuple[str, np.ndarray]] = {}
        for call in calls:
            _, _, sides = _score_call(score, plan, call, stream, Worst(), only=set(moved))
            run.calls += 1
            _pair(plan, sides, pending, run.comparisons)
        moved = [k for k in moved if run.comparisons[k].moved]


def describe(plan: Plan, k: int, comparison: Comparison) -> str:
    """One line naming what moved, where, and by how much."""
    probe = plan.probes[k]
    offset = int(plan.starts[probe.window])
    where = f"window {probe.window} (stream offset {offset})"
    change = f"{comparison.change:.3g}" if math.isfinite(comparison.change) else str(comparison.change)
    if probe.kind == "copy":
        return (f"{where} scored in two calls with different other rows: the log-probability of token "
                f"{comparison.token} at position {comparison.position} changed by {change}")
    boundary = " (at a document boundary)" if probe.at_boundary else ""
    return (f"{where}: changing only the tokens after position {probe.position}{boundary} moved the "
            f"log-probability of token {comparison.token} at position {comparison.position} by {change}")

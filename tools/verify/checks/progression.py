"""`score_progression`: does each log's final score follow from its own training run? Warns, never fails.

Traces in the log of docs/FAILURES.md A1 (weights tuned on validation after training, "pre-quant TTT": 1.1463 at the
end of training, 1.1025 claimed) and A2/A6 (several passes over validation, the last or the best reported):
- a final score clearly better than the validation at the last training step of the same run. Quantizing the
  weights costs a little (the baseline: about +0.0005 bpb); it does not gain 0.005;
- a log in our format (one final `*_exact` line by contract) with several different final scores.
Both have innocent explanations (a final evaluation by another method than the in-training one, such as sliding
windows or score-first test-time training), so this check warns and names the numbers for a human; the probes
(`rescore`, `causality`) are the proof when a record ships its artifact.
"""

from __future__ import annotations

from tools.records.model import CheckResult, ParsedLog
from tools.verify.checks.common import RecordContext, first_and_count, result

# A final score this much better (lower) than the last in-training validation is a warning.
PREQUANT_MARGIN_BPB = 0.005


def last_step_validation(log: ParsedLog) -> tuple[int, float] | None:
    """(step, val_bpb) of the log's validation at its last training step, if it printed one."""
    point = next((p for p in reversed(log.curve) if p.val_bpb is not None), None)
    if point is None or log.steps is None or point.step != log.steps:
        return None
    return point.step, point.val_bpb


def progression_problems(name: str, log: ParsedLog) -> tuple[list[str], bool]:
    """(warnings for one log, whether a final score could be compared with an in-training one)."""
    problems = []
    finals = [(label, bpb) for label, bpb in log.exact_scores if bpb is not None]
    if log.contract_format and len({bpb for _, bpb in finals}) > 1:
        listed = ", ".join(f"{label} {bpb:.4f}" for label, bpb in finals)
        problems.append(f"{name}: {len(finals)} different final scores ({listed}); the last is taken as the "
                        f"score: several passes over validation may report the better one")
    reference = last_step_validation(log)
    if reference is None or log.val_bpb is None:
        return problems, False
    step, before = reference
    gain = before - log.val_bpb
    if gain > PREQUANT_MARGIN_BPB:
        problems.append(f"{name}: final score {log.val_bpb:.4f} is {gain:.4f} better than the validation at the "
                        f"last training step ({before:.4f} at step {step}), more than the {PREQUANT_MARGIN_BPB} "
                        f"quantization cannot explain: another evaluation method, or weights tuned on validation "
                        f"after training?")
    return problems, True


def check_score_progression(ctx: RecordContext) -> CheckResult:
    if not ctx.logs:
        return result("score_progression", "skip", "no logs (see files)")
    problems, compared = [], 0
    for item in ctx.logs:
        found, was_compared = progression_problems(item.name, item.log)
        problems += found
        compared += was_compared
    evidence = {"margin_bpb": PREQUANT_MARGIN_BPB, "compared": compared}
    if problems:
        return result("score_progression", "warn", first_and_count(problems), problems=problems, **evidence)
    if compared == 0:
        return result("score_progression", "skip", "no log prints a validation at its last training step to "
                                                    "compare the final score with", **evidence)
    return result("score_progression", "pass", f"{compared} log(s): the final score is within "
                                               f"{PREQUANT_MARGIN_BPB} of the validation at the last training step",
                  **evidence)

"""`significance`: do the seeds beat SOTA - min_improvement at p < alpha (one-sided t-test, tools.verify.checks.stats)?

The values tested are the logs' scores (one per distinct seed), never the claims. SOTA is the baseline the
summarizer found (the accepted chain of the track at the record's date, or `--against`). The first record of a
track has nothing to beat (skip: it may become SOTA); an unranked track is never tested (skip).
"""

from __future__ import annotations

import math

from tools.records.model import CheckResult
from tools.verify.checks.common import RecordContext, result
from tools.verify.checks.stats import significance_test


def check_significance(ctx: RecordContext) -> CheckResult:
    track = ctx.track
    if track is None:
        return result("significance", "skip", "unknown track (see track): no rule to test against")
    if not track.ranked:
        return result("significance", "skip", f"not ranked: track {track.id} is never tested against SOTA")
    rule = track.significance
    scored = ctx.metric_values(rule.metric)
    if ctx.baseline is None:
        first = f"first record of {track.id}: no accepted record before it to beat (it may become SOTA)"
        values = [value for _, value in scored]
        bad = [name for name, value in scored if not math.isfinite(value)]
        if bad:  # a first record becomes SOTA: an infinite score would block the track for good
            return result("significance", "fail", f"{bad[0]}: {rule.metric} is not a finite number; {first}")
        if len(values) >= 2 and len(set(values)) == 1:
            # Identical scores across seeds are a red flag even when there is nothing to compare them with.
            return result("significance", "warn", f"zero variance across seeds: all {len(values)} {rule.metric} equal {values[0]}; {first}")
        return result("significance", "skip", first)
    baseline = ctx.baseline
    stats = significance_test(
        [value for _, value in scored], baseline.mean, rule.min_improvement, rule.alpha, sota_values=baseline.values
    )
    stats.update(metric=rule.metric, sota_source=baseline.source, logs=[name for name, _ in scored])
    ctx.cache["stats"] = stats
    message = f"{rule.metric} vs {baseline.source}: {stats['reason']}"
    evidence = {k: v for k, v in stats.items() if k not in ("status", "reason")}
    status = stats["status"]
    if not rule.enforce and status == "fail":
        # A historical ruleset: the test is computed against the chain and reported, not enforced.
        status, message = "warn", f"{message} (reported, not enforced by ruleset {track.ruleset})"
    return CheckResult(id="significance", status=status, message=message, evidence=evidence)

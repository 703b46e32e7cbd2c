"""Is a candidate's improvement over SOTA real? One-sided t-tests on per-seed val_bpb.

H0: the candidate's mean val_bpb >= SOTA mean - min_improvement (the threshold); H1: it is lower.
The verdict comes from a one-sample test of the candidate's seeds against the threshold (scipy's ttest_1samp,
alternative="less"); when SOTA's own seed values are known, Welch's two-sample test against SOTA's values
shifted by min_improvement is reported too (information, not the verdict).

Degenerate inputs never crash and never pass by accident: fewer than two finite values, NaN/inf scores and zero
spread are explicit failures with the reason. scipy is imported inside the function so importing this module
costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MAX_SEEDS_ESTIMATE = 10_000  # beyond this the improvement is, for practical purposes, not demonstrable


def _finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN/inf: report them as None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def seeds_needed(mean: float, std: float, threshold: float, alpha: float) -> int | None:
    """Smallest n with a one-sided p < alpha if n seeds had this mean and spread; None if no n <= 10,000 does.

    The condition is (threshold - mean) / (std / sqrt(n)) > t_{1-alpha, n-1}.
    """
    margin = threshold - mean
    if not (math.isfinite(margin) and math.isfinite(std)) or margin <= 0 or std <= 0:
        return None
    import numpy as np
    from scipy import stats

    # Search in growing blocks: the answer is almost always small, and t.ppf over 10,000 values costs ~5 ms.
    start = 2
    for stop in (64, 1024, MAX_SEEDS_ESTIMATE):
        n = np.arange(start, stop + 1)
        reached = margin * np.sqrt(n) / std > stats.t.ppf(1 - alpha, n - 1)
        if reached.any():
            return int(n[np.argmax(reached)])
        start = stop + 1
    return None


def significance_test(
    values: Sequence[float],
    sota_mean: float,
    min_improvement: float,
    alpha: float,
    sota_values: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Test `values` (per-seed val_bpb) against `sota_mean - min_improvement`; return the statistics and a verdict.

    Keys: n, mean, std (ddof=1), threshold, margin (threshold - mean), t, df, p, alpha, seeds_needed,
    status ("pass" / "fail"), reason (one line), and `welch` ({t, df, p, sota_n, sota_mean}) when `sota_values`
    has at least two finite values. Non-finite statistics are None.
    """
    values = [float(v) for v in values]
    threshold = float(sota_mean) - float(min_improvement)
    out: dict[str, Any] = {
        "n": len(values),
        "mean": None,
        "std": None,
        "threshold": _finite_or_none(threshold),
        "sota_mean": _finite_or_none(sota_mean),
        "min_improvement": float(min_improvement),
        "margin": None,
        "t": None,
        "df": None,
        "p": None,
        "alpha": float(alpha),
        "seeds_needed": None,
    }

    def verdict(status: str, reason: str) -> dict[str, Any]:
        out["status"], out["reason"] = status, reason
        return out

    if not math.isfinite(threshold):
        return verdict("fail", f"SOTA mean {sota_mean!r} is not a finite number")
    if not values:
        return verdict("fail", "no seed scores to test")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        return verdict("fail", f"{len(bad)} seed score(s) are not finite numbers ({bad[0]!r})")

    mean = math.fsum(values) / len(values)
    out["mean"], out["margin"] = mean, threshold - mean
    if len(values) < 2:
        return verdict("fail", "one seed: no spread to test against, a t-test needs at least two")
    # Identical scores have zero spread even where their float mean is one ulp off them (then the sum of squares
    # would give a std of ~1e-16 and a "significant" t-test).
    identical = max(values) == min(values)
    std = 0.0 if identical else math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    out["std"], out["df"] = std, len(values) - 1

    if std == 0.0:
        # scipy would return t=-inf/p=0 (or nan); identical scores across seeds are not evidence, they are a red flag.
        if mean < threshold:
            return verdict("fail", f"zero variance across seeds: all {len(values)} scores equal {mean:.8f}; suspicious")
        return verdict("fail", f"zero variance across seeds and mean {mean:.8f} is not below threshold {threshold:.8f}")

    from scipy import stats

    result = stats.ttest_1samp(values, threshold, alternative="less")
    out["t"], out["p"] = _finite_or_none(result.statistic), _finite_or_none(result.pvalue)
    out["seeds_needed"] = seeds_needed(mean, std, threshold, alpha)

    finite_sota = [float(v) for v in (sota_values or ()) if v is not None and math.isfinite(float(v))]
    if len(finite_sota) >= 2:
        shifted = [v - min_improvement for v in finite_sota]
        welch = stats.ttest_ind(values, shifted, equal_var=False, alternative="less")
        out["welch"] = {
            "t": _finite_or_none(welch.statistic),
            "df": _finite_or_none(getattr(welch, "df", None)),
            "p": _finite_or_none(welch.pvalue),
            "sota_n": len(finite_sota),
            "sota_mean": math.fsum(finite_sota) / len(finite_sota),
        }

    p = out["p"]
    summary = f"mean {mean:.5f} vs threshold {threshold:.5f} (SOTA {sota_mean:.5f} - {min_improvement}), n={len(values)}"
    if p is None:
        return verdict("fail", f"t-test gave no p-value; {summary}")
    if p < alpha:
        return verdict("pass", f"p={p:.2g} < {alpha}: {summary}")
    need = out["seeds_needed"]
    hint = f"; ~{need} seeds would reach p<{alpha} at this spread" if need and need > len(values) else ""
    if mean >= threshold:
        hint = "; the mean is not below the threshold"
    return verdict("fail", f"p={p:.2g} >= {alpha}: {summary}{hint}")

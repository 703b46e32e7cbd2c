"""tools.verify.checks.stats: the significance test behind the `significance` check."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from tools.verify.checks.stats import seeds_needed, significance_test

SOTA = 1.2000
DELTA = 0.005
ALPHA = 0.01


def test_clear_improvement_passes_and_matches_scipy():
    values = [1.1801, 1.1812, 1.1795]
    out = significance_test(values, SOTA, DELTA, ALPHA)
    direct = scipy_stats.ttest_1samp(values, SOTA - DELTA, alternative="less")
    assert out["status"] == "pass"
    assert out["p"] == pytest.approx(direct.pvalue, rel=1e-12)
    assert out["t"] == pytest.approx(direct.statistic, rel=1e-12)
    assert out["df"] == 2 and out["n"] == 3
    assert out["mean"] == pytest.approx(sum(values) / 3)
    assert out["std"] == pytest.approx(scipy_stats.tstd(values))
    assert out["threshold"] == pytest.approx(SOTA - DELTA)
    assert out["margin"] == pytest.approx(SOTA - DELTA - out["mean"])


def test_improvement_smaller_than_margin_fails():
    # 0.004 better than SOTA: below SOTA but not below SOTA - 0.005
    values = [1.1958, 1.1962, 1.1960]
    out = significance_test(values, SOTA, DELTA, ALPHA)
    assert out["status"] == "fail"
    assert "not below the threshold" in out["reason"]
    assert out["seeds_needed"] is None
    assert out["p"] == pytest.approx(scipy_stats.ttest_1samp(values, SOTA - DELTA, alternative="less").pvalue)


def test_noisy_improvement_fails_and_estimates_seeds_needed():
    values = [1.185, 1.199, 1.178]  # mean below threshold, but spread too wide for 3 seeds
    out = significance_test(values, SOTA, DELTA, ALPHA)
    assert out["status"] == "fail"
    assert out["p"] >= ALPHA
    need = out["seeds_needed"]
    assert need is not None and need > 3
    # The estimate is the smallest n meeting the t-quantile condition at the observed mean and spread.
    margin, std = out["margin"], out["std"]
    assert margin * math.sqrt(need) / std > scipy_stats.t.ppf(1 - ALPHA, need - 1)
    assert margin * math.sqrt(need - 1) / std <= scipy_stats.t.ppf(1 - ALPHA, need - 2)
    assert f"~{need} seeds" in out["reason"]


def test_one_seed_fails_without_crashing():
    out = significance_test([1.0], SOTA, DELTA, ALPHA)
    assert out["status"] == "fail" and "one seed" in out["reason"]
    assert out["p"] is None


def test_zero_variance_below_threshold_is_suspicious():
    out = significance_test([1.1, 1.1, 1.1], SOTA, DELTA, ALPHA)
    assert out["status"] == "fail"
    assert "zero variance across seeds" in out["reason"]
    assert out["p"] is None  # never a p of 0 from a degenerate t


def test_identical_scores_whose_float_mean_is_off_by_an_ulp_are_still_zero_variance():
    """Found by hypothesis in CI: the mean of three copies of this value is 1.1e-16 below it, which made a std of
    ~1e-16 and a 'significant' t-test out of identical scores."""
    value = 0.7231627240647371
    assert sum([value] * 3) / 3 != value  # the premise: float rounding moves the mean
    out = significance_test([value] * 3, 1.0, DELTA, ALPHA)
    assert out["status"] == "fail" and "zero variance across seeds" in out["reason"] and out["std"] == 0.0


def test_zero_variance_above_threshold_fails():
    out = significance_test([1.3, 1.3, 1.3], SOTA, DELTA, ALPHA)
    assert out["status"] == "fail" and "zero variance" in out["reason"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_fail(bad):
    out = significance_test([1.18, bad, 1.17], SOTA, DELTA, ALPHA)
    assert out["status"] == "fail" and "not finite" in out["reason"]


def test_non_finite_sota_fails():
    assert significance_test([1.18, 1.17], float("nan"), DELTA, ALPHA)["status"] == "fail"


def test_no_values_fails():
    assert significance_test([], SOTA, DELTA, ALPHA)["status"] == "fail"


def test_welch_against_sota_seeds_matches_scipy():
    values = [1.1801, 1.1812, 1.1795]
    sota_values = [1.2003, 1.1992, 1.2005]
    out = significance_test(values, sum(sota_values) / 3, DELTA, ALPHA, sota_values=sota_values)
    direct = scipy_stats.ttest_ind(values, [v - DELTA for v in sota_values], equal_var=False, alternative="less")
    assert out["welch"]["p"] == pytest.approx(direct.pvalue, rel=1e-12)
    assert out["welch"]["t"] == pytest.approx(direct.statistic, rel=1e-12)
    assert out["welch"]["sota_n"] == 3


def test_welch_absent_without_enough_sota_values():
    assert "welch" not in significance_test([1.18, 1.17, 1.175], SOTA, DELTA, ALPHA, sota_values=[1.2])


def test_result_is_json_serializable():
    out = significance_test([1.18, 1.17, 1.175], SOTA, DELTA, ALPHA, sota_values=[1.2, 1.21])
    json.dumps(out, allow_nan=False)


def test_seeds_needed_none_when_not_below_threshold():
    assert seeds_needed(1.2, 0.01, 1.195, ALPHA) is None
    assert seeds_needed(1.19, 0.0, 1.195, ALPHA) is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0.5, max_value=3.0, allow_nan=False), min_size=2, max_size=8),
    st.floats(min_value=0.5, max_value=3.0),
)
def test_pass_exactly_when_scipy_says_so(values, sota):
    out = significance_test(values, sota, DELTA, ALPHA)
    assert out["status"] in ("pass", "fail")
    spread = max(values) - min(values)
    if out["status"] == "pass":
        assert spread > 0
        assert scipy_stats.ttest_1samp(values, sota - DELTA, alternative="less").pvalue < ALPHA
    elif out["p"] is not None and out["std"]:
        assert out["p"] >= ALPHA


@pytest.mark.parametrize("margin", [0.05, 0.004, 0.0015, 0.0004])
def test_seeds_needed_is_the_smallest_n_across_search_blocks(margin):
    std, threshold = 0.01, 1.195
    need = seeds_needed(threshold - margin, std, threshold, ALPHA)
    assert need is not None
    assert margin * math.sqrt(need) / std > scipy_stats.t.ppf(1 - ALPHA, need - 1)
    if need > 2:
        assert margin * math.sqrt(need - 1) / std <= scipy_stats.t.ppf(1 - ALPHA, need - 2)


def test_seeds_needed_gives_up_beyond_ten_thousand():
    assert seeds_needed(1.195 - 1e-5, 0.01, 1.195, ALPHA) is None

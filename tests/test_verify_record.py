"""verify_record: a valid record passes; each planted defect fails exactly the check that owns it."""

from __future__ import annotations

import statistics

import pytest
from scipy import stats as scipy_stats

from tests.recordkit import SCRIPT, VAL_BYTES, VAL_TOKENS, change_line, make_record, make_repo_tree
from tools.records.model import RecordError
from tools.verify.checks import CHECK_IDS
from tools.verify.checks.verdict import verify_record

CAP = 16_000_000
SCRIPT_BYTES = len(SCRIPT.encode())


def verify(root, folder, **kwargs):
    return verify_record(folder, records_root=root / "records", datasets_root=root / "data" / "datasets", **kwargs)


def failing(report):
    return {c.id for c in report.checks if c.status == "fail"}


def only_fails(report, check_id, *fragments):
    """The report fails exactly `check_id`, and its message says each fragment."""
    assert failing(report) == {check_id}, [(c.id, c.status, c.message) for c in report.checks]
    message = report.get(check_id).message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_valid_record_passes_every_check(root):
    report = verify(root, make_record(root, artifacts=True))
    assert [c.id for c in report.checks] == list(CHECK_IDS)
    assert report.ok
    statuses = {c.id: c.status for c in report.checks}
    assert statuses.pop("significance") == "skip"  # the first record of the track has nothing to beat
    assert set(statuses.values()) == {"pass"}, statuses
    assert report.record == "records/track_cpu_shakespeare/2026-01-15_synthetic"
    assert report.stats["n"] == 3 and report.stats["mean"] == pytest.approx(statistics.fmean((1.5012, 1.4991, 1.5003)))


# -- files ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["README.md", "train_gpt.py", "submission.json"])
def test_missing_required_file_fails_files(root, name):
    report = verify(root, make_record(root, missing=[name]))
    assert "files" in failing(report)
    assert f"missing {name}" in report.get("files").message
    if name == "README.md":
        only_fails(report, "files")


def test_no_logs_fails_files(root):
    report = verify(root, make_record(root, missing=["train_seed42.log", "train_seed1337.log", "train_seed2025.log"]))
    assert "no training log" in report.get("files").message


def test_symlink_fails_files(root):
    message = only_fails(verify(root, make_record(root, symlink="notes.md")), "files", "notes.md", "symlink")
    assert "tracks.toml" in message


def test_oversized_file_fails_files(root):
    folder = make_record(root, extra_files={"blob.bin": b"\0" * 20_000_001})
    report = verify(root, folder)
    assert failing(report) == {"files", "artifact_bytes"}  # a shipped blob also counts toward the artifact cap
    assert "blob.bin" in report.get("files").message and "20,000,001" in report.get("files").message


def test_non_artifact_files_over_cap_plus_slack_fail_files(root):
    half = b"\0" * 10_000_001  # each under the per-file cap, together over 16 MB + 4 MB slack
    folder = make_record(root, extra_files={"notes_a.txt.bin": half, "notes_b.bin": half})
    report = verify(root, folder)
    # Files a record ships beside its model count toward the artifact cap as well (its code can read them).
    assert failing(report) == {"files", "artifact_bytes"}
    assert "20,0" in report.get("files").message and "artifact cap" in report.get("files").message
    assert "notes_a.txt.bin" in report.get("artifact_bytes").message


def test_empty_log_fails_files(root):
    report = verify(root, make_record(root, extra_files={"train_seed42.log": ""}))
    assert "files" in failing(report)
    assert "train_seed42.log" in report.get("files").message


# -- schema and track ------------------------------------------------------------------------------------------


def test_malformed_json_fails_schema_without_crashing(root):
    report = verify(root, make_record(root, submission_text='{"schema": 1, "author": '))
    only_fails(report, "schema", "submission.json", "line 1")
    assert report.get("claims_match_logs").status == "skip"


def test_repeated_seed_in_submission_fails_schema(root):
    def repeat(obj):
        obj["seeds"] = [42, 42, 2025]
        return obj

    report = verify(root, make_record(root, submission_edit=repeat))
    assert "schema" in failing(report)
    assert "repeated" in report.get("schema").message


def test_claimed_track_differs_from_folder(root):
    only_fails(verify(root, make_record(root, submission_overrides={"track": "track_10min_16mb"})), "track",
               "track_10min_16mb", "records/track_cpu_shakespeare/")  # fmt: skip


def test_unknown_track_folder(root):
    folder = make_record(root, track="track_made_up", submission_overrides={"track": "track_made_up"})
    report = verify(root, folder)
    only_fails(report, "track", "track_made_up", "not a track")
    assert report.get("code_lines").status == "skip"


# -- budgets ---------------------------------------------------------------------------------------------------


def test_code_lines_at_cap_passes_one_more_fails(root):
    # Each record is dated before the other so neither is the other's SOTA: significance is not the point here.
    assert verify(root, make_record(root, name="2026-01-15_a", code_lines=1500)).get("code_lines").status == "pass"
    only_fails(verify(root, make_record(root, name="2026-01-14_b", date="2026-01-14", code_lines=1501)), "code_lines",
               "1501", "1500")


def test_artifact_at_cap_passes_one_byte_over_fails(root):
    at_cap = make_record(root, name="2026-01-15_at", model_bytes=CAP - SCRIPT_BYTES)
    assert verify(root, at_cap).get("artifact_bytes").status == "pass"
    over = make_record(root, name="2026-01-14_over", date="2026-01-14",
                       model_bytes={42: 1000, 1337: CAP - SCRIPT_BYTES + 1, 2025: 1000})
    only_fails(verify(root, over), "artifact_bytes", "train_seed1337.log", "16,000,001", "over by 1")


def test_artifact_file_over_cap_fails_even_when_log_is_under(root):
    folder = make_record(root, artifacts=True, model_bytes=1000, artifact_file_bytes={2025: CAP - SCRIPT_BYTES + 1})
    report = verify(root, folder)
    only_fails(report, "artifact_bytes", "final_model_seed2025.int8.ptz")
    problems = report.get("artifact_bytes").evidence["problems"]
    assert any("16,000,001 bytes > cap" in p for p in problems), problems
    assert any("train_seed2025.log logged 1,000" in p for p in problems), problems


def test_logged_code_size_must_equal_shipped_script(root):
    wrong = SCRIPT_BYTES - 40  # the log claims a smaller script than the one shipped
    per_seed = {"code_bytes": wrong, "bytes_total": 150_000 + wrong}
    folder = make_record(
        root,
        log_overrides={s: per_seed for s in (42, 1337, 2025)},
        claim_overrides={s: per_seed for s in (42, 1337, 2025)},
    )
    only_fails(verify(root, folder), "artifact_bytes", f"logged code size {wrong:,}", f"{SCRIPT_BYTES:,}")


def test_inconsistent_logged_total_fails(root):
    folder = make_record(root, log_overrides={42: {"bytes_total": 150_000}}, claim_overrides={42: {"bytes_total": 150_000}})
    only_fails(verify(root, folder), "artifact_bytes", "train_seed42.log", "!= model")


def test_train_time_at_cap_passes_and_point_three_seconds_over_fails(root):
    assert verify(root, make_record(root, name="2026-01-15_a", train_time_ms=180_000)).get("train_time").status == "pass"
    folder = make_record(root, name="2026-01-14_b", date="2026-01-14",
                         train_time_ms={42: 170_000, 1337: 175_000, 2025: 180_300})
    only_fails(verify(root, folder), "train_time", "train_seed2025.log", "180.300 s", "cap 180 s")


def test_eval_time_over_cap_fails(root):
    folder = make_record(root, eval_time_ms={42: 30_000, 1337: 60_001, 2025: 30_000})
    only_fails(verify(root, folder), "eval_time", "train_seed1337.log", "60.001 s")


def test_missing_eval_time_fails_on_ranked_track_naming_the_log(root):
    folder = make_record(root, drop_log_lines={1337: ("eval_time", "final_int8_zlib_roundtrip val_loss")})
    report = verify(root, folder)
    assert report.get("eval_time").status == "fail"
    assert "train_seed1337.log: no eval_time" in report.get("eval_time").message


def test_time_caps_skip_on_track_without_caps(root):
    report = verify(root, make_record(root, track="track_non_record_16mb", seeds=(42,),
                                      submission_overrides={"track": "track_non_record_16mb"}))  # fmt: skip
    assert report.get("train_time").status == "skip" and report.get("eval_time").status == "skip"
    assert report.get("significance").status == "skip"
    assert "not ranked" in report.get("significance").message
    assert report.ok


# -- claims ----------------------------------------------------------------------------------------------------


def test_claim_differing_in_fourth_decimal_fails(root):
    folder = make_record(root, bpbs=(1.50123456, 1.49911111, 1.50033333), claim_overrides={1337: {"val_bpb": 1.49921111}})
    only_fails(verify(root, folder), "claims_match_logs", "seed 1337", "1.49921111", "1.49911111", "train_seed1337.log")


def test_claim_written_as_a_round_number_fails(root):
    # "1.4" has one printed decimal; agreeing at that precision would accept any log from 1.35 to 1.45.
    folder = make_record(root, bpbs=(1.41234567, 1.41134567, 1.41334567), claim_overrides={42: {"val_bpb": 1.4}})
    only_fails(verify(root, folder), "claims_match_logs", "seed 42", "1.4", "train_seed42.log")


def test_claims_rounded_to_four_decimals_pass(root):
    bpbs = (1.50123456, 1.49911111, 1.50033333)
    folder = make_record(
        root,
        bpbs=bpbs,
        claim_overrides={s: {"val_bpb": round(b, 4)} for s, b in zip((42, 1337, 2025), bpbs, strict=True)},
        submission_overrides={"val_bpb": round(statistics.fmean(bpbs), 4), "val_bpb_std": round(statistics.stdev(bpbs), 4)},
    )
    assert verify(root, folder).get("claims_match_logs").status == "pass"


def test_headline_mean_must_be_mean_of_seeds(root):
    folder = make_record(root, submission_overrides={"val_bpb": 1.4990})
    only_fails(verify(root, folder), "claims_match_logs", "val_bpb 1.499", "mean")


def test_headline_std_must_be_sample_std(root):
    bpbs = (1.5012, 1.4991, 1.5003)
    population_std = round(statistics.pstdev(bpbs), 8)  # ddof=0: the classic slip
    folder = make_record(root, bpbs=bpbs, submission_overrides={"val_bpb_std": population_std})
    only_fails(verify(root, folder), "claims_match_logs", "val_bpb_std", "sample std")


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [("steps", 199, "steps 199"), ("train_time_s", 175.3, "train_time_s 175.3"), ("artifact_bytes", 149_999, "artifact_bytes")],
)
def test_per_seed_numbers_must_match(root, field, value, fragment):
    folder = make_record(root, claim_overrides={2025: {field: value}})
    only_fails(verify(root, folder), "claims_match_logs", "seed 2025", fragment)


def test_log_of_unclaimed_seed_fails_claims(root):
    folder = make_record(root, log_overrides={2025: {"seed": 7}})
    message = only_fails(verify(root, folder), "claims_match_logs")
    assert "seed 7" in message


def test_log_with_no_score_fails_without_crashing(root):
    report = verify(root, make_record(root, drop_log_lines={42: ("final_int8_zlib_roundtrip",)}))
    assert "claims_match_logs" in failing(report)
    assert "train_seed42.log has no score line" in report.get("claims_match_logs").message
    assert "min_seeds" in failing(report)  # only two seeds have a score


def test_truncated_log_fails_without_crashing(root):
    report = verify(root, make_record(root, truncate_log={1337: 4}))
    assert not report.ok
    assert "train_seed1337.log" in report.get("claims_match_logs").message


# -- code ------------------------------------------------------------------------------------------------------


def test_log_whose_code_differs_by_one_line(root):
    folder = make_record(root, log_code={1337: change_line(SCRIPT, 5, 'SEED = 7')})
    only_fails(verify(root, folder), "code_matches_logs", "train_seed1337.log", "line 5", "SEED = 7", "SEED = int(")


def test_logged_code_sha_must_match_script(root):
    report = verify(root, make_record(root, log_overrides={42: {"code_sha256": "0" * 64}}))
    assert "code_matches_logs" in failing(report)
    assert "code_sha256" in report.get("code_matches_logs").message


def test_log_without_embedded_code_fails(root):
    folder = make_record(root, extra_files={"train_seed42.log": "seed:42\nfinal_int8_zlib_roundtrip_exact val_loss:4.1 val_bpb:1.5\n"})
    report = verify(root, folder)
    assert "no embedded code" in report.get("code_matches_logs").message


# -- seeds -----------------------------------------------------------------------------------------------------


def test_rerun_of_the_same_seed_fails_seeds_distinct(root):
    folder = make_record(root, extra_logs={"train_seed42_rerun.log": 42})
    only_fails(verify(root, folder), "seeds_distinct", "train_seed42.log", "train_seed42_rerun.log", "seed 42")


def test_a_byte_copy_of_a_log_counts_once_and_is_said(root):
    folder = make_record(root)
    (folder / "train.log").write_bytes((folder / "train_seed42.log").read_bytes())
    report = verify(root, folder)
    assert report.ok, [(c.id, c.status, c.message) for c in report.checks]
    assert "train.log is a byte copy of train_seed42.log (counted once)" in report.get("files").message
    assert report.stats["n"] == 3


def test_two_seeds_fail_min_seeds(root):
    only_fails(verify(root, make_record(root, seeds=(42, 1337))), "min_seeds", "2 scored seed", "minimum 3")


# -- dataset ---------------------------------------------------------------------------------------------------


def test_wrong_tokenizer_sha_fails_dataset(root):
    folder = make_record(root, log_overrides={s: {"tokenizer_sha256": "f" * 64} for s in (42, 1337, 2025)})
    only_fails(verify(root, folder), "dataset", "tokenizer_sha256", "ffff")


def test_partial_validation_set_fails_dataset(root):
    folder = make_record(root, log_overrides={1337: {"val_tokens": VAL_TOKENS // 2}})
    only_fails(verify(root, folder), "dataset", "train_seed1337.log", "partial", str(VAL_TOKENS))


def test_wrong_val_bytes_fails_dataset(root):
    folder = make_record(root, log_overrides={42: {"val_bytes": VAL_BYTES + 1}})
    only_fails(verify(root, folder), "dataset", "val_bytes")


def test_a_track_whose_tokenizer_disagrees_with_its_prepared_dataset_fails_dataset(root):
    """tracks.toml's `tokenizer` is checked against the dataset the judge prepared (sp1024 here)."""
    toml = root / "records" / "tracks.toml"
    toml.write_text(toml.read_text().replace('tokenizer = "sp1024"', 'tokenizer = "sp4096"'))
    only_fails(verify(root, make_record(root)), "dataset", "tokenizer is sp1024", "sp4096")


def test_wrong_dataset_name_fails_dataset(root):
    folder = make_record(root, log_overrides={42: {"dataset_name": "shakespeare_byte"}})
    only_fails(verify(root, folder), "dataset", "shakespeare_byte")


def test_missing_manifest_skips_with_the_command_that_prepares_it(tmp_path):
    root = make_repo_tree(tmp_path, datasets=())
    check = verify(root, make_record(root)).get("dataset")
    assert check.status == "skip"
    assert "python data/prepare.py shakespeare" in check.message


def test_shipped_tokenizer_needs_audit(root):
    report = verify(root, make_record(root, ship_tokenizer=True))
    assert report.get("dataset").status == "warn"
    assert "needs tokenizer audit" in report.get("dataset").message
    assert report.ok  # a warning does not fail the record


# -- significance ----------------------------------------------------------------------------------------------


def make_sota(root, bpbs=(1.6010, 1.5990, 1.6002)):
    return make_record(root, name="2026-01-01_sota", date="2026-01-01", bpbs=bpbs)


def test_significant_improvement_passes_and_p_matches_scipy(root):
    make_sota(root)
    bpbs = (1.5801, 1.5822, 1.5795)
    report = verify(root, make_record(root, bpbs=bpbs))
    check = report.get("significance")
    assert check.status == "pass", check.message
    sota_mean = statistics.fmean((1.6010, 1.5990, 1.6002))
    direct = scipy_stats.ttest_1samp(bpbs, sota_mean - 0.005, alternative="less")
    assert report.stats["p"] == pytest.approx(direct.pvalue, rel=1e-9)
    assert report.stats["t"] == pytest.approx(direct.statistic, rel=1e-9)
    assert report.stats["threshold"] == pytest.approx(sota_mean - 0.005)
    assert report.stats["sota_source"] == "records/track_cpu_shakespeare/2026-01-01_sota"
    welch = scipy_stats.ttest_ind(bpbs, [v - 0.005 for v in (1.6010, 1.5990, 1.6002)], equal_var=False, alternative="less")
    assert report.stats["welch"]["p"] == pytest.approx(welch.pvalue, rel=1e-9)


def test_non_significant_improvement_fails_significance(root):
    make_sota(root)
    report = verify(root, make_record(root, bpbs=(1.5960, 1.5940, 1.5935)))  # ~0.006 better, noisy
    only_fails(report, "significance", "p=")
    assert report.stats["p"] >= 0.01


def test_zero_variance_fails_significance(root):
    make_sota(root)
    only_fails(verify(root, make_record(root, bpbs=(1.5, 1.5, 1.5))), "significance", "zero variance across seeds")


def test_against_overrides_the_chain(root):
    bpbs = (1.5801, 1.5822, 1.5795)
    report = verify(root, make_record(root, bpbs=bpbs), against=1.6)
    assert report.get("significance").status == "pass"
    direct = scipy_stats.ttest_1samp(bpbs, 1.595, alternative="less")
    assert report.stats["p"] == pytest.approx(direct.pvalue, rel=1e-9)
    assert report.stats["sota_source"] == "--against 1.6"
    assert verify(root, make_record(root, name="2026-01-15_b", bpbs=bpbs), against=1.585).get("significance").status == "fail"


def test_significance_uses_one_value_per_seed(root):
    """A rerun of a seed is not extra evidence: n stays the number of distinct seeds."""
    make_sota(root)
    report = verify(root, make_record(root, bpbs=(1.5801, 1.5822, 1.5795), extra_logs={"train_seed42_b.log": 42}))
    assert report.stats["n"] == 3


# -- legacy and bad input ----------------------------------------------------------------------------------------


def test_legacy_record_skips_what_it_lacks(root):
    report = verify(root, make_record(root, legacy=True, seeds=(1, 2, 3)))
    statuses = {c.id: c.status for c in report.checks}
    assert statuses["schema"] == "warn"
    assert statuses["dataset"] == "skip"
    assert statuses["seeds_distinct"] == "skip"
    assert report.ok, [(c.id, c.status, c.message) for c in report.checks]


def test_legacy_logs_may_print_several_final_scores(root):
    """Public logs print one final line per evaluation method (round trip, sliding windows, TTT): not a warning
    there; our format prints one, so several are (tests/test_failure_catalog_static.py, A6)."""
    folder = make_record(root, legacy=True, seeds=(1, 2, 3), bpbs=(1.2000, 1.2010, 1.2020))
    for log in folder.glob("*.log"):
        text = log.read_text()
        exact = next(line for line in text.splitlines() if line.startswith("final_int8_zlib_roundtrip_exact"))
        sliding = exact.replace("roundtrip_exact", "roundtrip_exact sliding").replace("val_bpb:1.2", "val_bpb:1.1")
        log.write_text(text.replace(exact, sliding + "\n" + exact))
    check = verify(root, folder).get("score_progression")
    assert check.status == "pass", check.message


def test_legacy_single_log_record_does_not_crash(root):
    report = verify(root, make_record(root, legacy=True, seeds=(1,)))
    assert [c.id for c in report.checks] == list(CHECK_IDS)
    assert failing(report) == {"min_seeds"}


def test_missing_folder_raises_record_error(root):
    with pytest.raises(RecordError, match="no such record folder"):
        verify(root, root / "records" / "track_cpu_shakespeare" / "nope")


def test_folder_outside_records_raises_record_error(root, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(RecordError, match="outside the records root"):
        verify(root, outside)


def test_non_finite_against_is_bad_usage(root):
    with pytest.raises(RecordError):
        verify(root, make_record(root), against=float("nan"))


def test_zero_variance_first_record_is_flagged(root):
    check = verify(root, make_record(root, bpbs=(1.5, 1.5, 1.5))).get("significance")
    assert check.status == "warn" and "zero variance across seeds" in check.message


def test_record_without_logs_fails_files_and_min_seeds_only(root):
    report = verify(root, make_record(root, missing=["train_seed42.log", "train_seed1337.log", "train_seed2025.log"]))
    assert failing(report) == {"files", "min_seeds"}
    assert report.get("train_time").status == "skip"


def _with_legacy_seed_results(claimed_bpbs):
    def edit(obj):
        obj["seed_results"] = {str(seed): {"val_bpb": bpb} for seed, bpb in claimed_bpbs.items()}
        return obj

    return edit


def test_legacy_per_seed_claims_are_matched_by_log_file_name(root):
    bpbs = (1.5012, 1.4991, 1.5003)
    good = make_record(root, name="2026-01-15_good", legacy=True, seeds=(1, 2, 3), bpbs=bpbs,
                       submission_edit=_with_legacy_seed_results(dict(zip((1, 2, 3), bpbs, strict=True))))  # fmt: skip
    assert verify(root, good).get("claims_match_logs").status == "pass"
    bad = make_record(root, name="2026-01-15_bad", legacy=True, seeds=(1, 2, 3), bpbs=bpbs,
                      submission_edit=_with_legacy_seed_results({1: 1.5012, 2: 1.4981, 3: 1.5003}))  # fmt: skip
    only_fails(verify(root, bad), "claims_match_logs", "seed 2", "1.4981", "train_seed2.log")


def test_a_rerun_log_never_replaces_the_claimed_log_score(root):
    folder = make_record(root)
    rerun = (folder / "train_seed42.log").read_text().replace("val_bpb:1.50120000", "val_bpb:1.40000000")
    (folder / "a_seed42.log").write_text(rerun)  # sorts before train_seed42.log
    report = verify(root, folder)
    assert failing(report) == {"seeds_distinct"}
    assert report.stats["mean"] == pytest.approx(statistics.fmean((1.5012, 1.4991, 1.5003)))


# -- helpers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("printed", "places"), [("1.23450000", 8), (175000.0, 0), ("1e-05", 5), (1.5013, 4), ("180300", 0)])
def test_decimals(printed, places):
    from tools.verify.checks.common import decimals

    assert decimals(printed) == places


@pytest.mark.parametrize(
    ("claim", "logged", "places", "agree"),
    [(1.2346, 1.23456789, 8, True), (1.2347, 1.23456789, 8, False), (1.23466789, 1.23456789, 8, False),
     (1.23456789, 1.23456789, 8, True), (175.0, 175.0004, 3, True), (175.3, 175.0, 3, False),
     (float("nan"), 1.0, 8, False)],
)  # fmt: skip
def test_agree_at_precision(claim, logged, places, agree):
    from tools.verify.checks.common import agree_at_precision

    assert agree_at_precision(claim, logged, places) is agree


def test_first_difference_reports_end_of_file():
    from tools.verify.checks.logs import first_difference

    assert first_difference(b"a\nb\n", b"a\nb\nc\n") == (3, "<end of file>", "'c'")
    assert first_difference(b"a\nX\n", b"a\nb\n") == (2, "'X'", "'b'")


def test_infinite_score_never_passes(root):
    folder = make_record(root)
    log = folder / "train_seed42.log"
    log.write_text(log.read_text().replace("val_bpb:1.50120000", "val_bpb:1e400"))  # parses as a float: inf
    report = verify(root, folder)
    assert report.get("significance").status == "fail"
    assert "not a finite number" in report.get("significance").message
    assert "claims_match_logs" in failing(report)


def test_on_our_tracks_a_claim_cannot_pick_a_better_final_line(root):
    # Attack on the public ruleset's leniency: drop the contract's code_sha256 line, print a better final line after
    # the `_exact` one and claim it. On our tracks the claim never chooses the score.
    folder = make_record(root, drop_log_lines={42: ("code_sha256",)}, claim_overrides={42: {"val_bpb": 1.0, "val_loss": 1.0}})
    log = folder / "train_seed42.log"
    log.write_text(log.read_text() + "final_ttt val_loss:1.0000 val_bpb:1.0000 eval_time:1ms\n")
    report = verify(root, folder)
    assert report.get("claims_match_logs").status == "fail"
    assert "seed 42: val_bpb 1.0" in report.get("claims_match_logs").message
    assert 1.0 not in [value for value in (report.stats.get("mean"),)]


# -- hardware ----------------------------------------------------------------------------------------------------

CPU_LINE = 'hardware: device:cpu cpu_model:"Synthetic CPU" cpu_cores:2 world_size:1'


def with_hardware_line(folder, seed, line):
    log = folder / f"train_seed{seed}.log"
    text = log.read_text()
    assert CPU_LINE in text
    log.write_text(text.replace(CPU_LINE, line) if line else text.replace(CPU_LINE + "\n", ""))


@pytest.mark.parametrize("line,fragment", [
    ('hardware: device:cuda gpu_model:"NVIDIA H100 80GB HBM3" gpu_count:1 world_size:1', "ran on cuda"),
    ('hardware: device:cpu cpu_model:"Synthetic CPU" cpu_cores:2 world_size:2', "world_size 2"),
    ("", "no hardware line"),
])
def test_a_log_from_another_machine_or_process_count_fails_hardware(root, line, fragment):
    folder = make_record(root)
    with_hardware_line(folder, 1337, line)
    only_fails(verify(root, folder), "hardware", "train_seed1337.log", fragment)


def test_the_right_machine_passes_hardware():
    from tools.verify.checks.hardware import expected_machine

    assert expected_machine("2 CPU cores") == ("cpu", None)
    assert expected_machine("8xH100 SXM") == ("cuda", "H100")
    assert expected_machine("any") == (None, None)


def test_a_gpu_track_log_from_another_gpu_model_fails_hardware(root):
    folder = make_record(root, track="track_10min_16mb", name="2026-01-15_gpu")
    with_hardware_line(folder, 42, 'hardware: device:cuda gpu_model:"NVIDIA A100-SXM4-80GB" gpu_count:8 world_size:8')
    check = verify(root, folder).get("hardware")
    assert check.status == "fail" and "GPU 'NVIDIA A100-SXM4-80GB'" in check.message, check.message

"""tools.verify.checks.sota: the accepted chain of a track, computed from the record folders alone."""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import subprocess

import pytest
from scipy import stats as scipy_stats

from tests.recordkit import make_record
from tools.verify.checks.sota import accepted_chain, judge_track, sota_at
from tools.verify.checks.verdict import verify_record

TRACK = "track_cpu_shakespeare"


def names(entries):
    return [entry.record.name for entry in entries]


@pytest.fixture
def history(root):
    """A first record, a real improvement, a noisy one, an invalid one with a great score, another improvement."""
    make_record(root, name="2026-01-01_first", date="2026-01-01", bpbs=(1.6010, 1.5990, 1.6002))
    make_record(root, name="2026-01-05_better", date="2026-01-05", bpbs=(1.5501, 1.5512, 1.5495))
    make_record(root, name="2026-01-07_noise", date="2026-01-07", bpbs=(1.5470, 1.5440, 1.5480))
    make_record(root, name="2026-01-08_overtime", date="2026-01-08", bpbs=(1.3001, 1.3012, 1.2995),
                train_time_ms=181_000)  # fmt: skip
    make_record(root, name="2026-01-09_best", date="2026-01-09", bpbs=(1.5001, 1.5012, 1.4995))
    return root


def test_chain_keeps_only_valid_significant_records(history):
    chain = accepted_chain(TRACK, history / "records")
    assert names(chain) == ["2026-01-01_first", "2026-01-05_better", "2026-01-09_best"]
    first, better, best = chain
    assert first.p_value is None and first.previous is None
    assert better.previous == f"records/{TRACK}/2026-01-01_first"
    assert best.previous == f"records/{TRACK}/2026-01-05_better"  # noise and overtime never became SOTA
    assert best.mean == pytest.approx(statistics.fmean((1.5001, 1.5012, 1.4995)))
    assert best.values == (1.5001, 1.5012, 1.4995)
    assert best.seeds == (42, 1337, 2025)
    direct = scipy_stats.ttest_1samp(best.values, better.mean - 0.005, alternative="less")
    assert best.p_value == pytest.approx(direct.pvalue, rel=1e-9)


def test_judge_track_lists_every_record_with_its_verdict(history):
    judged = judge_track(TRACK, history / "records")
    verdicts = {path.name: (accepted, report.ok) for path, report, accepted in judged}
    assert verdicts == {
        "2026-01-01_first": (True, True),
        "2026-01-05_better": (True, True),
        "2026-01-07_noise": (False, False),
        "2026-01-08_overtime": (False, False),
        "2026-01-09_best": (True, True),
    }
    reports = {path.name: report for path, report, _ in judged}
    assert reports["2026-01-07_noise"].get("significance").status == "fail"
    assert reports["2026-01-08_overtime"].get("train_time").status == "fail"


def test_sota_at_is_the_last_entry_strictly_before(history):
    records = history / "records"
    assert sota_at(TRACK, dt.date(2026, 1, 1), records_root=records) is None
    assert sota_at(TRACK, dt.date(2026, 1, 5), records_root=records).record.name == "2026-01-01_first"
    assert sota_at(TRACK, dt.date(2026, 1, 9), records_root=records).record.name == "2026-01-05_better"
    assert sota_at(TRACK, dt.datetime(2026, 1, 10, 12), records_root=records).record.name == "2026-01-09_best"
    assert sota_at(TRACK, None, records_root=records).record.name == "2026-01-09_best"


def test_verify_record_uses_the_sota_at_its_own_date(history):
    report = verify_record(history / "records" / TRACK / "2026-01-09_best")
    assert report.stats["sota_source"] == f"records/{TRACK}/2026-01-05_better"
    assert report.ok
    # A new candidate dated later must beat the newest SOTA.
    late = make_record(history, name="2026-02-01_same", date="2026-02-01", bpbs=(1.5001, 1.5012, 1.4995))
    report = verify_record(late)
    assert report.stats["sota_source"] == f"records/{TRACK}/2026-01-09_best"
    assert report.get("significance").status == "fail"


def _commit(root, message):
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message],
                   check=True, capture_output=True)


def test_records_of_the_same_day_are_judged_in_the_order_they_entered_the_repository(root):
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    make_record(root, name="2026-01-01_first", date="2026-01-01", bpbs=(1.6010, 1.5990, 1.6002))
    make_record(root, name="2026-01-05_z_entered_first", date="2026-01-05", bpbs=(1.5481, 1.5492, 1.5475))
    _commit(root, "first two")
    make_record(root, name="2026-01-05_a_entered_later", date="2026-01-05", bpbs=(1.5501, 1.5512, 1.5495))
    _commit(root, "a later one")
    chain = accepted_chain(TRACK, root / "records")
    # By name "a" would come first; by entry it is judged after "z" and does not beat it.
    assert names(chain) == ["2026-01-01_first", "2026-01-05_z_entered_first"]
    late = verify_record(root / "records" / TRACK / "2026-01-05_a_entered_later")
    assert late.stats["sota_source"] == f"records/{TRACK}/2026-01-05_z_entered_first"
    assert late.get("significance").status == "fail"


def test_a_byte_copy_of_the_sota_under_a_later_name_never_becomes_sota(root):
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    make_record(root, name="2026-01-01_first", date="2026-01-01", bpbs=(1.6010, 1.5990, 1.6002))
    original = make_record(root, name="2026-01-05_original", date="2026-01-05", bpbs=(1.5481, 1.5492, 1.5475))
    _commit(root, "records")
    shutil.copytree(original, root / "records" / TRACK / "2026-01-05_zz_copy")  # the pull request: not committed
    chain = accepted_chain(TRACK, root / "records")
    assert names(chain) == ["2026-01-01_first", "2026-01-05_original"]
    copy = verify_record(root / "records" / TRACK / "2026-01-05_zz_copy")
    assert copy.get("significance").status == "fail"
    assert copy.stats["sota_source"] == f"records/{TRACK}/2026-01-05_original"


def test_invalid_first_record_does_not_start_the_chain(root):
    make_record(root, name="2026-01-01_broken", date="2026-01-01", bpbs=(1.2, 1.21), seeds=(1, 2))
    make_record(root, name="2026-01-02_valid", date="2026-01-02", bpbs=(1.6010, 1.5990, 1.6002))
    chain = accepted_chain(TRACK, root / "records")
    assert names(chain) == ["2026-01-02_valid"]
    assert chain[0].p_value is None


def test_chain_follows_changes_on_disk(root):
    make_record(root, name="2026-01-01_first", date="2026-01-01", bpbs=(1.6010, 1.5990, 1.6002))
    assert names(accepted_chain(TRACK, root / "records")) == ["2026-01-01_first"]
    make_record(root, name="2026-01-05_better", date="2026-01-05", bpbs=(1.5501, 1.5512, 1.5495))
    assert names(accepted_chain(TRACK, root / "records")) == ["2026-01-01_first", "2026-01-05_better"]


def test_unranked_track_accepts_every_valid_record(root):
    track = "track_non_record_16mb"
    for day, bpb in ((1, 1.3), (2, 1.4)):
        make_record(root, track=track, name=f"2026-01-0{day}_run", date=f"2026-01-0{day}", seeds=(42,), bpbs=(bpb,),
                    submission_overrides={"track": track})  # fmt: skip
    chain = accepted_chain(track, root / "records")
    assert names(chain) == ["2026-01-01_run", "2026-01-02_run"]
    assert all(entry.report.get("significance").status == "skip" for entry in chain)


def test_unreadable_record_folder_is_listed_not_accepted(root):
    make_record(root, name="2026-01-01_first", date="2026-01-01")
    (root / "records" / TRACK / "2026-01-02_empty").mkdir()
    judged = {path.name: (report, accepted) for path, report, accepted in judge_track(TRACK, root / "records")}
    report, accepted = judged["2026-01-02_empty"]
    assert not accepted and not report.ok


def test_empty_track_has_empty_chain(root):
    assert accepted_chain(TRACK, root / "records") == []
    assert judge_track("track_10min_16mb", root / "records") == []


def test_a_record_whose_evidence_failed_never_sets_the_bar(root):
    # The leaderboard rejects a record whose judge evidence failed; the chain must agree (issue 10: one policy).
    from tools.records.model import CheckResult
    from tools.submit.leaderboard import judge_board
    from tools.verify.evidence import write_verification_evidence

    make_record(root, name="2026-01-01_first", date="2026-01-01", bpbs=(1.6010, 1.5990, 1.6002))
    cheat = make_record(root, name="2026-01-05_cheat", date="2026-01-05", bpbs=(1.4001, 1.3990, 1.4002))
    write_verification_evidence(cheat, [CheckResult("rescore", "fail", "the judge's rescore is 1.97, not 1.40")])
    later = make_record(root, name="2026-01-09_honest", date="2026-01-09", bpbs=(1.5501, 1.5512, 1.5495))
    chain = accepted_chain(TRACK, root / "records")
    assert names(chain) == ["2026-01-01_first", "2026-01-09_honest"]
    report = verify_record(later)
    assert report.stats["sota_source"] == f"records/{TRACK}/2026-01-01_first"
    board = {entry.name: entry for board in judge_board(root / "records") for entry in board.rejected}
    assert "judge evidence: probes failed" in board["2026-01-05_cheat"].note

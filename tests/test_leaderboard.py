"""leaderboard.md: deterministic, re-judged from the folders, evidence-aware; `submit leaderboard [--check]`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.recordkit import make_record, make_repo_tree
from tools.records.model import CheckResult
from tools.submit.cli import main
from tools.submit.leaderboard import (
    EVIDENCE_FILE,
    read_verification_evidence,
    render_leaderboard,
    write_leaderboard,
    write_verification_evidence,
)

TRACK = "track_cpu_shakespeare"


def populate(root: Path, order: tuple[str, ...] = ("base", "better", "same", "late", "solo")) -> None:
    """A track history with one record of every kind, created in `order` (the board must not care)."""
    makers = {
        "base": lambda: make_record(root, name="2026-01-10_base", date="2026-01-10", bpbs=(1.50, 1.51, 1.49)),
        "better": lambda: make_record(root, name="2026-01-20_better", date="2026-01-20", bpbs=(1.40, 1.401, 1.399)),
        "same": lambda: make_record(root, name="2026-01-25_same", date="2026-01-25", bpbs=(1.40, 1.402, 1.398)),
        "late": lambda: make_record(root, name="2026-01-26_late", date="2026-01-26", train_time_ms=180_300),
        "solo": lambda: make_record(root, track="track_non_record_16mb", name="2026-01-11_solo", date="2026-01-11",
                                    seeds=(1,), bpbs=(1.3,)),
    }  # fmt: skip
    for key in order:
        makers[key]()


def section(board: str, heading: str) -> str:
    """The text after `heading` up to the next track (or, for a table header, up to the table's end)."""
    if heading not in board:
        return ""
    rest = board.split(heading, 1)[1].split("\n## ", 1)[0]
    return rest.split("\n\n", 1)[0] if heading.startswith("|") else rest


def test_every_kind_of_record_lands_in_its_section(repo):
    populate(repo)
    board = render_leaderboard()
    cpu = section(board, f"(`{TRACK}`)")
    chain = section(cpu, "| # | date |")
    assert "2026-01-10\\_base" in chain and "2026-01-20\\_better" in chain
    assert "same" not in chain and "late" not in chain
    assert "2026-01-25\\_same" in section(cpu, "**Non-record entries")
    assert "train\\_time: train\\_seed42.log: train\\_time 180.300 s" in section(cpu, "**Not accepted**")
    assert "2026-01-11\\_solo" in section(board, "(`track_non_record_16mb`)")
    assert "| 2 | 2026-01-20 |" in chain and "| 1.85e-05 |" in chain  # p-value recomputed against base
    assert board.index("(`track_cpu_shakespeare`)") < board.index("(`track_10min_16mb`)")  # tracks.toml order


def test_regeneration_is_byte_identical_and_independent_of_creation_order(repo, tmp_path):
    populate(repo)
    assert write_leaderboard() is True
    first = (repo / "leaderboard.md").read_bytes()
    plot = repo / "records" / TRACK / "progress.png"
    plot_stat = plot.stat()
    assert write_leaderboard() is False
    assert (repo / "leaderboard.md").read_bytes() == first
    assert plot.stat().st_mtime_ns == plot_stat.st_mtime_ns  # unchanged bytes are not rewritten

    other = make_repo_tree(tmp_path / "other")
    populate(other, order=("solo", "late", "same", "better", "base"))
    assert render_leaderboard(other / "records").encode() == first
    assert not [p for p in repo.rglob(".*")]  # no temporary files left behind


def test_a_record_claiming_a_better_score_than_its_logs_stays_out_of_the_chain(repo):
    make_record(repo, name="2026-01-10_base", date="2026-01-10", bpbs=(1.50, 1.51, 1.49))
    # Its logs (1.43) would beat base; its submission.json claims 1.35. A false claim is a failed record.
    make_record(repo, name="2026-01-20_liar", date="2026-01-20", bpbs=(1.43, 1.431, 1.429),
                submission_overrides={"val_bpb": 1.35})  # fmt: skip
    board = render_leaderboard()
    assert "liar" not in section(board, "| # | date |")
    assert "claims\\_match\\_logs: submission.json: val\\_bpb 1.35" in section(board, "**Not accepted**")


def test_only_the_chain_decides_sota_whatever_submission_json_says(repo):
    # Both claim honestly; the second is better but only by 0.002 (< 0.005): not a new SOTA.
    make_record(repo, name="2026-01-10_base", date="2026-01-10", bpbs=(1.50, 1.501, 1.499))
    make_record(repo, name="2026-01-20_marginal", date="2026-01-20", bpbs=(1.498, 1.4985, 1.4975))
    board = render_leaderboard()
    assert "Current SOTA: [2026-01-10\\_base]" in board


def test_check_mode_exits_1_when_stale_and_0_when_current(repo):
    populate(repo, order=("base",))
    runner = CliRunner()
    result = runner.invoke(main, ["leaderboard", "--check"])
    assert result.exit_code == 1 and "out of date" in result.output
    assert not (repo / "leaderboard.md").exists()
    assert runner.invoke(main, ["leaderboard"]).exit_code == 0
    result = runner.invoke(main, ["leaderboard", "--check", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["changed"] is False
    make_record(repo, name="2026-01-20_better", date="2026-01-20", bpbs=(1.40, 1.401, 1.399))
    result = runner.invoke(main, ["leaderboard", "--check"])
    assert result.exit_code == 1
    assert "+| 2 | 2026-01-20 |" in result.output


def test_evidence_shows_how_far_a_record_was_verified(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_verification_evidence(folder, [CheckResult("tokenizer_bytes", "pass", "bytes match")], commit="abc")
    write_verification_evidence(folder, [CheckResult("normalization", "pass", "sums to 1"),
                                         CheckResult("causality", "pass", "no look-ahead")], commit="abc")  # fmt: skip
    with pytest.raises(ValueError, match="unknown status"):
        write_verification_evidence(folder, [CheckResult("rescore", "maybe", "?")], commit="abc")  # type: ignore[arg-type]
    evidence = read_verification_evidence(folder)
    assert set(evidence["checks"]) == {"tokenizer_bytes", "normalization", "causality"}  # merged, not replaced
    assert evidence["tool_commit"] == "abc"
    row = section(render_leaderboard(), "| # | date |")
    assert "| static, statistics, tokenizer audit, probes |" in row

    (folder / "README.md").write_text("edited after verification\n")
    board = render_leaderboard()
    assert "_No accepted record yet._" in section(board, f"(`{TRACK}`)")  # stale evidence is held against it
    assert ("judge evidence: verification.json is stale: README.md changed since the judge's run"
            in section(board, "**Not accepted**").replace("\\", ""))


def test_a_static_warning_is_shown_on_the_board_but_keeps_the_record_in_the_chain(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10", bpbs=(1.2000, 1.2010, 1.2020))
    log = folder / "train_seed42.log"
    text = log.read_text()
    log.write_text(text.replace("val_bpb:1.2005 ", "val_bpb:1.2440 "))  # the last training validation
    board = render_leaderboard()
    row = section(board, "| # | date |")
    assert "| static (warn: score_progression), statistics |" in row
    assert "Current SOTA: [2026-01-10\\_base]" in board


def test_failed_judge_evidence_keeps_a_record_out_of_the_chain(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_verification_evidence(folder, [CheckResult("causality", "fail", "log-probs moved")], commit="abc")
    board = render_leaderboard()
    assert "_No accepted record yet._" in section(board, f"(`{TRACK}`)")
    assert "judge evidence: probes failed" in section(board, "**Not accepted**")


def test_hand_written_evidence_in_the_wrong_shape_keeps_the_record_out(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    (folder / EVIDENCE_FILE).write_text(json.dumps({"schema": 2, "checks": {"causality": "pass"}}))
    assert read_verification_evidence(folder) is None
    board = render_leaderboard()
    assert "_No accepted record yet._" in section(board, f"(`{TRACK}`)")
    assert "verification.json is malformed" in section(board, "**Not accepted**").replace("\\", "")


def test_untrusted_text_cannot_break_the_table(repo):
    make_record(repo, name="2026-01-10_base", date="2026-01-10",
                submission_overrides={"author": "Eve | 9.99 |\n## Fake heading [x](javascript:alert(1))"})  # fmt: skip
    board = render_leaderboard()
    row = next(line for line in board.splitlines() if line.startswith("| 1 |"))
    assert row.count(" | ") == len("| # | date | record | author | val_bpb (mean ± std) | seeds | p vs previous SOTA | artifact bytes | verified |".split(" | ")) - 1
    assert "| Eve \\| 9.99 \\| \\#\\# Fake heading \\[x\\](javasc… |" in row
    assert "\n## Fake heading" not in board


def test_progress_plot_is_removed_when_the_track_has_no_chain(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_leaderboard()
    plot = repo / "records" / TRACK / "progress.png"
    assert plot.is_file()
    assert f"![progress of {TRACK}](records/{TRACK}/progress.png)" in (repo / "leaderboard.md").read_text()
    os.remove(folder / "train_gpt.py")
    write_leaderboard()
    assert not plot.exists()
    assert "progress.png" not in (repo / "leaderboard.md").read_text()


def test_hidden_staging_folders_are_not_records(repo):
    make_record(repo, name="2026-01-10_base", date="2026-01-10")
    staging = repo / "records" / TRACK / ".staging-abc"
    staging.mkdir()
    (staging / "submission.json").write_text("{}")
    assert "staging" not in render_leaderboard()


def test_regenerations_are_serialized_by_a_lock_on_the_records_folder(repo):
    import fcntl
    import threading
    import time

    make_record(repo, name="2026-01-10_base", date="2026-01-10")
    render_leaderboard()  # warm: imports and the judge's cache, so an unlocked write would be quick
    descriptor = os.open(repo / "records", os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    writer = threading.Thread(target=write_leaderboard, kwargs={"plots": False})
    try:
        writer.start()
        time.sleep(1.0)
        assert not (repo / "leaderboard.md").exists()  # still waiting for the lock
    finally:
        os.close(descriptor)
    writer.join(timeout=60)
    assert (repo / "leaderboard.md").is_file()

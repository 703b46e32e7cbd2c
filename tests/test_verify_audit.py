"""`verify audit DIR`: every record of a tree judged alone, a table or JSON, exit codes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.publickit import PUBLIC_RULESET, march_log, public_record, public_tree
from tools.verify.cli import main


def _tree(tmp_path):
    tree = public_tree(tmp_path)
    submission = {"author": "a", "name": "n", "track": "10min_16mb", "val_bpb": 1.2244}
    public_record(tree, "2026-03-17_good", logs={"train.log": march_log()}, submission=submission)
    public_record(tree, "2026-03-18_over", logs={"train.log": march_log(model_bytes=16_500_000)}, submission=submission)
    broken = public_record(tree, "2026-03-19_broken", logs={"train.log": march_log()}, submission=submission)
    (broken / "submission.json").write_text('{"author": ' * 3)  # unreadable: a schema failure, not a crash
    return tree


def _audit(*args):
    return CliRunner().invoke(main, ["audit", *map(str, args)])


def test_audit_judges_every_record_and_exits_1_when_one_fails(tmp_path):
    tree = _tree(tmp_path)
    run = _audit(tree, "--ruleset", PUBLIC_RULESET, "--json")
    assert run.exit_code == 1, run.output
    verdict = json.loads(run.output)
    assert verdict["ruleset"] == "parameter-golf"
    by_record = {item["record"]: item for item in verdict["records"]}
    assert set(by_record) == {"track_10min_16mb/2026-03-17_good", "track_10min_16mb/2026-03-18_over",
                              "track_10min_16mb/2026-03-19_broken"}
    assert by_record["track_10min_16mb/2026-03-17_good"]["ok"]
    over = {c["id"]: c["status"] for c in by_record["track_10min_16mb/2026-03-18_over"]["checks"]}
    assert over["artifact_bytes"] == "fail"
    broken = {c["id"]: c["status"] for c in by_record["track_10min_16mb/2026-03-19_broken"]["checks"]}
    assert broken["schema"] == "fail"
    assert verdict["summary"]["records"] == 3 and verdict["summary"]["passed"] == 1
    assert verdict["summary"]["checks"]["artifact_bytes"]["fail"] == 1


def test_a_record_that_makes_the_judge_raise_is_an_error_entry_and_the_others_keep_their_verdicts(tmp_path, monkeypatch):
    import tools.verify.checks.verdict as record_checks

    tree = _tree(tmp_path)
    real = record_checks.verify_record

    def flaky(folder, **options):
        if folder.name.endswith("_over"):
            raise RuntimeError("boom")
        return real(folder, **options)

    monkeypatch.setattr(record_checks, "verify_record", flaky)
    run = _audit(tree, "--ruleset", PUBLIC_RULESET)
    assert run.exit_code == 1
    assert "ERROR" in run.output and "RuntimeError: boom" in run.output
    assert "2026-03-17_good" in run.output and "1 could not be judged" in run.output


def test_check_filter_decides_the_verdict_and_exit_0(tmp_path):
    tree = _tree(tmp_path)
    run = _audit(tree, "--ruleset", PUBLIC_RULESET, "--check", "train_time", "--check", "track", "--json")
    verdict = json.loads(run.output)
    assert all({c["id"] for c in item["checks"]} <= {"train_time", "track"} for item in verdict["records"])
    assert run.exit_code == 0, run.output  # train_time only warns (0.038 s within the grace)


def test_bad_usage_exits_2_with_one_line(tmp_path):
    tree = _tree(tmp_path)
    for args, fragment in (((tree, "--check", "nope"), "unknown check id"),
                           ((tree, "--ruleset", "no-such-rules"), "unknown ruleset"),
                           ((tmp_path / "absent",), "")):
        run = _audit(*args)
        assert run.exit_code == 2, run.output
        assert fragment in run.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _audit(empty).exit_code == 2


def test_a_repository_checkout_is_audited_through_its_records_folder(tmp_path):
    tree = _tree(tmp_path)
    run = _audit(tree.parent, "--ruleset", "parameter-golf")
    assert run.exit_code == 1
    assert "1 of 3 records passed" in run.output


def test_ruleset_option_on_record_and_tokenizer(tmp_path):
    tree = _tree(tmp_path)
    good = tree / "track_10min_16mb" / "2026-03-17_good"
    run = CliRunner().invoke(main, ["record", str(good), "--ruleset", "parameter-golf"])
    assert run.exit_code == 0, run.output  # our own tracks would reject it (no line cap there, its track alias...)
    assert CliRunner().invoke(main, ["record", str(good)]).exit_code != 0
    for command in ("record", "tokenizer"):
        bad = CliRunner().invoke(main, [command, str(good), "--ruleset", "no-such-rules"])
        assert bad.exit_code == 2 and "unknown ruleset" in bad.output, bad.output

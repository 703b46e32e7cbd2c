"""`audit_record` on tiny record folders whose train_gpt.py plants each byte-accounting bug (run in the sandbox)."""

from __future__ import annotations

import os
import tempfile

import pytest
from test_tokenizer_audit_kit import (
    DATASET,
    VAL_TEXTS,
    build_dataset,
    build_models,
    build_record,
    build_repo,
    byte_table_script,
    log_text,
)

from tools.records.model import RecordError
from tools.verify.tokenizer.audit import audit_record, audit_record_detailed

TRUE_BYTES = sum(len(t.encode()) for t in VAL_TEXTS)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return build_models(tmp_path_factory)


@pytest.fixture
def repo(tmp_path, monkeypatch, models):
    """A scratch repository (tracks.toml, a correct baseline train_gpt.py) and a prepared dataset."""
    root = build_repo(tmp_path / "repo")
    datasets = tmp_path / "datasets"
    build_dataset(datasets, models["lossless"])
    monkeypatch.setenv("PG_REPO_ROOT", str(root))
    monkeypatch.setenv("PG_DATASETS_ROOT", str(datasets))
    # Every temporary folder the audit makes goes here, so the test can see that none is left behind.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield root
    assert list(scratch.iterdir()) == [], "the audit left temporary folders behind"


def by_id(checks):
    return {c.id: c for c in checks}


def test_correct_record_passes(repo):
    folder = build_record(repo, "2026-01-01_ok", byte_table_script("correct"), logs={"train_seed1.log": log_text(1, TRUE_BYTES)})
    checks = by_id(audit_record(folder))
    assert [c.status for c in checks.values()] == ["pass", "pass", "pass"], [c.message for c in checks.values()]
    evidence = checks["tokenizer_bytes"].evidence
    assert evidence["comparison"]["table_bytes"] == TRUE_BYTES and evidence["record_table"]["status"] == "ok"


@pytest.mark.parametrize(
    ("bug", "class_id"),
    [
        ("leading_space_double", "leading_space_double"),
        ("byte_as_fffd", "byte_as_replacement_char"),
        ("public_space_rule", "space_mark_as_utf8"),
        ("control_counted", "special_counted"),
        ("partial_utf8_ignore", "partial_utf8"),
    ],
)
def test_planted_table_bug_fails_and_is_named(repo, bug, class_id):
    folder = build_record(repo, f"2026-01-01_{bug}", byte_table_script(bug), val_bpb=1.25)
    check = by_id(audit_record(folder))["tokenizer_bytes"]
    assert check.status == "fail", check.message
    comparison = check.evidence["comparison"]
    assert [c["id"] for c in comparison["classes"]] == [class_id]
    error = comparison["table_bytes"] - TRUE_BYTES
    assert error != 0 and comparison["classes"][0]["byte_error"] == error
    assert class_id in check.message and f"{error:+,} bytes" in check.message
    effect = check.evidence["bpb_effect"]
    assert effect["true_bpb"] == pytest.approx(1.25 * comparison["table_bytes"] / TRUE_BYTES)
    assert "claimed val_bpb 1.2500" in check.message


def test_dummy_prefix_counted_by_a_record_with_its_own_tokenizer(repo, models):
    folder = build_record(repo, "2026-01-01_dummy", byte_table_script("dummy_not_free"), tokenizer=models["dummy"])
    result = audit_record_detailed(folder)
    assert result.tokenizer_origin == "record"
    check = by_id(result.checks)["tokenizer_bytes"]
    assert check.status == "fail"
    assert [c["id"] for c in check.evidence["comparison"]["classes"]] == ["dummy_prefix_counted"]


def test_record_tokenizer_without_standalone_space_fails_even_with_a_contract_table(repo, models):
    folder = build_record(repo, "2026-01-01_nospace", byte_table_script("correct"), tokenizer=models["nospace"])
    checks = by_id(audit_record(folder))
    assert checks["tokenizer_roundtrip"].status == "pass"
    check = checks["tokenizer_bytes"]
    assert check.status == "fail" and "space_as_byte_tokens" in check.message
    assert any("no standalone ▁" in f for f in checks["tokenizer_roundtrip"].evidence["findings"])


def test_record_without_entry_point_warns_and_checks_the_baseline_table(repo):
    folder = build_record(repo, "2026-01-01_noentry", "print('training would start here')\n")
    check = by_id(audit_record(folder))["tokenizer_bytes"]
    assert check.status == "warn"
    assert "no `byte-table` entry point" in check.message and "unknown" in check.message
    assert check.evidence["comparison"]["source"] == "baseline train_gpt.py byte-table"
    assert check.evidence["comparison"]["table_bytes"] == TRUE_BYTES


def test_record_without_entry_point_fails_when_the_baseline_table_is_wrong_for_its_tokenizer(repo, models):
    folder = build_record(repo, "2026-01-01_noentry_nospace", "print('no entry point')\n", tokenizer=models["nospace"])
    check = by_id(audit_record(folder))["tokenizer_bytes"]
    assert check.status == "fail" and "space_as_byte_tokens" in check.message and "unknown" in check.message


def test_without_any_baseline_script_the_contract_rule_stands_in(repo):
    (repo / "train_gpt.py").unlink()
    folder = build_record(repo, "2026-01-01_nobaseline", None)
    check = by_id(audit_record(folder))["tokenizer_bytes"]
    assert check.status == "warn" and "contract's per-token rule" in check.evidence["comparison"]["source"]


def test_logged_val_bytes_must_be_the_true_count(repo):
    logs = {"train_seed1.log": log_text(100, TRUE_BYTES), "train_seed2.log": log_text(100, TRUE_BYTES + 7)}
    folder = build_record(repo, "2026-01-01_logs", byte_table_script("correct"), logs=logs)
    check = by_id(audit_record(folder))["tokenizer_bytes"]
    assert check.status == "fail"
    assert f"train_seed2.log: logged val_bytes {TRUE_BYTES + 7:,}" in check.message
    assert "train_seed1.log" not in check.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("raise SystemExit(3)", "exited with code 3"),
        ("np.save(out, np.ones(len(table)), allow_pickle=False)\nraise SystemExit(0)", "dtype float64"),
        ("np.save(out, np.array([object()] * len(table)), allow_pickle=True)\nraise SystemExit(0)", "not a readable .npy"),
        ("import os; os.symlink('nowhere', out)\nraise SystemExit(0)", "symlinks are refused"),
        ("import time; time.sleep(60)", "did not finish within 3 s"),
    ],
)
def test_broken_byte_table_output_fails(repo, body, expected):
    folder = build_record(repo, "2026-01-01_broken", byte_table_script(body))
    check = by_id(audit_record(folder, timeout_s=3))["tokenizer_bytes"]
    assert check.status == "fail" and expected in check.message, check.message


def test_record_code_runs_from_a_private_copy(repo):
    # A record that tries to rewrite its own folder (or leave files in it) must not touch the original; the
    # sandbox's copy is read-only as well, so the writes are refused and the table is still built.
    tamper = ("refused = 0\nfor name, text in ((__file__, 'tampered'), ('left_behind.txt', 'x')):\n"
              "    try:\n        open(name, 'w').write(text)\n    except OSError:\n        refused += 1\n"
              "assert refused == 2, 'the copy should be read-only'")
    script = byte_table_script(tamper)
    folder = build_record(repo, "2026-01-01_tamper", script)
    before = sorted(p.name for p in folder.iterdir())
    assert by_id(audit_record(folder))["tokenizer_bytes"].status == "pass"
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "train_gpt.py").read_text() == script


def test_val_document_hash_mismatch_fails_with_its_name(repo, tmp_path):
    doc = tmp_path / "datasets" / DATASET / "val_docs" / "doc01.txt"
    doc.write_bytes(doc.read_bytes().replace(b"king", b"KING"))  # same length, different bytes
    folder = build_record(repo, "2026-01-01_ok", byte_table_script("correct"))
    checks = by_id(audit_record(folder))
    assert checks["val_documents"].status == "fail" and "val_docs/doc01.txt: sha256" in checks["val_documents"].message
    assert checks["tokenizer_roundtrip"].status == checks["tokenizer_bytes"].status == "skip"


def test_symlinked_val_document_is_refused(repo, tmp_path):
    doc = tmp_path / "datasets" / DATASET / "val_docs" / "doc00.txt"
    (tmp_path / "elsewhere.txt").write_bytes(doc.read_bytes())
    doc.unlink()
    os.symlink(tmp_path / "elsewhere.txt", doc)
    folder = build_record(repo, "2026-01-01_ok", byte_table_script("correct"))
    check = by_id(audit_record(folder))["val_documents"]
    assert check.status == "fail" and "val_docs/doc00.txt: cannot read" in check.message


def test_unreadable_input_raises_record_error(repo, tmp_path, models):
    with pytest.raises(RecordError, match="not a record folder"):
        audit_record(tmp_path / "missing")
    folder = build_record(repo, "2026-01-01_ok", byte_table_script("correct"))
    (tmp_path / "datasets" / DATASET / "manifest.json").unlink()
    with pytest.raises(RecordError, match="not prepared"):
        audit_record(folder)
    build_dataset(tmp_path / "datasets2", models["lossless"])
    (folder / "tokenizer.model").write_bytes(b"garbage")
    with pytest.raises(RecordError) as info:
        audit_record(folder, datasets_root=tmp_path / "datasets2")
    assert info.value.where.endswith("tokenizer.model") and "not a SentencePiece model" in info.value.message


def test_token_count_differing_from_the_manifest_is_a_warning(repo, tmp_path):
    import json

    manifest_path = tmp_path / "datasets" / DATASET / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["val_tokens"] = 12345
    manifest_path.write_text(json.dumps(manifest))
    folder = build_record(repo, "2026-01-01_ok", byte_table_script("correct"))
    check = by_id(audit_record(folder))["tokenizer_roundtrip"]
    assert check.status == "warn" and "val_tokens 12,345" in check.message

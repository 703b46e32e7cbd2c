"""docs/FAILURES.md rows C1-C4 (wrong number of bytes in the bpb denominator), caught by `verify tokenizer`.

Each record plants one public byte-accounting bug in its own `train_gpt.py byte-table` (run by the audit in the
sandbox) or ships a tokenizer that cannot be counted per token; the audit recounts the bytes from the original
validation documents. Fixtures: real tiny SentencePiece models and datasets from tests/test_tokenizer_audit_kit.py.
"""

from __future__ import annotations

import pytest

# Imported as the other audit tests import it, so the session's trained models are shared with them.
from test_tokenizer_audit_kit import (
    VAL_TEXTS,
    build_dataset,
    build_models,
    build_record,
    build_repo,
    byte_table_script,
    log_text,
)

from tools.verify.tokenizer.audit import audit_record

TRUE_BYTES = sum(len(text.encode()) for text in VAL_TEXTS)
CLAIMED_BPB = 1.25


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_models(tmp_path_factory)


@pytest.fixture
def repo(tmp_path, monkeypatch, models):
    """A repository whose baseline byte-table is correct, and the track's dataset (the lossless model)."""
    root = build_repo(tmp_path / "repo")
    build_dataset(tmp_path / "datasets", models["lossless"])
    monkeypatch.setenv("PG_REPO_ROOT", str(root))
    monkeypatch.setenv("PG_DATASETS_ROOT", str(tmp_path / "datasets"))
    return root


def audit(folder) -> dict:
    return {check.id: check for check in audit_record(folder)}


def bug_classes(check) -> list[str]:
    return [found["id"] for found in check.evidence["comparison"]["classes"]]


def planted(repo, name: str, bug: str, **options):
    return audit(build_record(repo, name, byte_table_script(bug), val_bpb=CLAIMED_BPB, **options))


def test_c3_honest_twin_contract_table_passes(repo):
    checks = audit(build_record(repo, "2026-01-01_ok", byte_table_script("correct"),
                                logs={"train_seed1.log": log_text(1, TRUE_BYTES)}))
    assert {key: check.status for key, check in checks.items()} == {
        "val_documents": "pass", "tokenizer_roundtrip": "pass", "tokenizer_bytes": "pass"}


def test_c1_vocabulary_without_a_standalone_space_fails_tokenizer_bytes(repo, models):
    """Every lone space becomes <0xE2><0x96><0x81>: no per-token table can count it as the one byte it is."""
    checks = planted(repo, "2026-01-02_nospace", "correct", tokenizer=models["nospace"])
    check = checks["tokenizer_bytes"]
    assert check.status == "fail" and bug_classes(check) == ["space_as_byte_tokens"]
    assert check.evidence["comparison"]["table_bytes"] > TRUE_BYTES


def test_c1_whitespace_only_piece_counted_as_utf8_fails_tokenizer_bytes(repo):
    """The public table's rule: the first ▁ is a space, every further ▁ (as in ▁▁▁▁) its 3 UTF-8 bytes."""
    check = planted(repo, "2026-01-03_spaces", "public_space_rule")["tokenizer_bytes"]
    assert check.status == "fail" and bug_classes(check) == ["space_mark_as_utf8"]
    assert "space_mark_as_utf8" in check.message


def test_c2_byte_fallback_counted_as_three_bytes_fails_tokenizer_bytes(repo):
    check = planted(repo, "2026-01-04_fffd", "byte_as_fffd")["tokenizer_bytes"]
    assert check.status == "fail" and bug_classes(check) == ["byte_as_replacement_char"]
    table_bytes = check.evidence["comparison"]["table_bytes"]
    assert table_bytes > TRUE_BYTES
    true_bpb = CLAIMED_BPB * table_bytes / TRUE_BYTES
    assert f"claimed val_bpb {CLAIMED_BPB:.4f} is {true_bpb:.4f} with the true denominator" in check.message


def test_c3_leading_space_counted_twice_fails_tokenizer_bytes(repo):
    check = planted(repo, "2026-01-05_double", "leading_space_double")["tokenizer_bytes"]
    assert check.status == "fail" and bug_classes(check) == ["leading_space_double"]
    error = check.evidence["comparison"]["table_bytes"] - TRUE_BYTES
    assert error > 0 and f"{error:+,} bytes" in check.message


def test_c4_case_folding_tokenizer_fails_tokenizer_roundtrip(repo, models):
    """A tokenizer that transforms the text (here: folds case) does not decode back to the original bytes."""
    checks = planted(repo, "2026-01-06_casefold", "correct", tokenizer=models["casefold"])
    assert checks["tokenizer_roundtrip"].status == "fail"
    assert "do not decode to the original text" in checks["tokenizer_roundtrip"].message


def case_marked(text: str) -> str:
    """An invertible transform: every capital becomes a case marker (⇧) and its lower-case letter."""
    return "".join("\u21e7" + c.lower() if c.isupper() else c for c in text)


def test_c4_bytes_of_the_transformed_text_counted_fail_tokenizer_bytes(repo):
    """The record counted the bytes of its case-marked text, not of the original."""
    transformed = sum(len(case_marked(text).encode()) for text in VAL_TEXTS)
    assert transformed > TRUE_BYTES
    check = planted(repo, "2026-01-07_caseops", "correct", logs={"train_seed1.log": log_text(100, transformed)})
    check = check["tokenizer_bytes"]
    assert check.status == "fail"
    assert f"train_seed1.log: logged val_bytes {transformed:,} but the validation text has {TRUE_BYTES:,}" in check.message

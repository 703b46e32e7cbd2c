"""`verify tokenizer`: exit codes, one-line errors, the table and the JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from test_tokenizer_audit_kit import (
    VAL_TEXTS,
    build_dataset,
    build_models,
    build_record,
    build_repo,
    byte_table_script,
    save_table,
)

from tools.verify.cli import main
from tools.verify.tokenizer.byte_truth import load_tokenizer


def invoke(*args: str):
    return CliRunner().invoke(main, ["tokenizer", *args], catch_exceptions=False)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return build_models(tmp_path_factory)


@pytest.fixture
def texts(tmp_path):
    paths = []
    for i, text in enumerate(VAL_TEXTS):
        path = tmp_path / f"doc{i}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def text_args(texts):
    return [arg for path in texts for arg in ("--text", path)]


def test_text_mode_passes_with_the_contract_rule(models, texts):
    result = invoke("--tokenizer", str(models["lossless"]), *text_args(texts))
    assert result.exit_code == 0, result.output
    assert "tokenizer_roundtrip  PASS" in result.output and "tokenizer_bytes      PASS" in result.output
    assert "verdict: PASSED" in result.output


def test_text_mode_with_a_wrong_table_fails_and_explains(models, texts, tmp_path):
    truth = load_tokenizer(models["lossless"])
    values = truth.byte_counts.copy()
    values[truth.leading_space] += 1
    table = save_table(tmp_path / "table.npy", values, flag=False)
    result = invoke("--tokenizer", str(models["lossless"]), *text_args(texts), "--table", str(table))
    assert result.exit_code == 1
    assert "verdict: FAILED (tokenizer_bytes)" in result.output and "leading_space_double" in result.output
    assert "byte error by class" in result.output


def test_lossy_tokenizer_fails_the_round_trip_with_its_place(models, texts):
    result = invoke("--tokenizer", str(models["lossy"]), *text_args(texts), "--json")
    assert result.exit_code == 1
    payload = json.loads(result.output)
    roundtrip = next(c for c in payload["checks"] if c["id"] == "tokenizer_roundtrip")
    assert roundtrip["status"] == "fail"
    assert roundtrip["evidence"]["first_mismatch"]["document"].endswith("doc0.txt")
    assert isinstance(roundtrip["evidence"]["first_mismatch"]["offset"], int)


def test_json_output_of_a_record(models, tmp_path, monkeypatch):
    repo = build_repo(tmp_path / "repo")
    build_dataset(tmp_path / "datasets", models["lossless"])
    folder = build_record(repo, "2026-01-01_fffd", byte_table_script("byte_as_fffd"))
    monkeypatch.setenv("PG_REPO_ROOT", str(repo))
    result = invoke(str(folder), "--datasets-root", str(tmp_path / "datasets"), "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert payload["ok"] is False and payload["tokenizer"]["vocab_size"] == 330
    statuses = {c["id"]: c["status"] for c in payload["checks"]}
    assert statuses == {"val_documents": "pass", "tokenizer_roundtrip": "pass", "tokenizer_bytes": "fail"}
    assert payload["comparisons"][0]["classes"][0]["id"] == "byte_as_replacement_char"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a record PATH, or --tokenizer MODEL"),
        (["--tokenizer", "x.model"], "give a record PATH, or --tokenizer MODEL"),
        (["somewhere", "--tokenizer", "x.model", "--text", "t"], "not both"),
        (["somewhere", "--table", "t.npy"], "--table goes with --tokenizer"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and message in result.output


def test_unreadable_inputs_exit_2_naming_the_file(models, texts, tmp_path):
    bad_table = tmp_path / "bad.npy"
    np.save(bad_table, np.ones(3, np.int64))
    cases = [
        (["--tokenizer", str(tmp_path / "none.model"), *text_args(texts)], "none.model: cannot read tokenizer"),
        (["--tokenizer", str(models["lossless"]), "--text", str(tmp_path / "missing.txt")], "missing.txt: cannot read text"),
        (["--tokenizer", str(models["lossless"]), *text_args(texts), "--table", str(bad_table)], "bad.npy: shape (3,)"),
        ([str(tmp_path / "no_record")], "not a record folder"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and message in result.output and result.output.count("\n") == 1


def test_help_teaches():
    result = invoke("--help")
    assert result.exit_code == 0
    for words in ("Exit codes", "Examples", "--json", "byte-table", "val_documents", "tokenizer_roundtrip"):
        assert words in result.output


def _processes_inside(folder) -> list[int]:
    """Pids whose working directory lies under `folder` (the record's private copies live there)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd").startswith(str(folder)):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_sigterm_kills_the_record_process_and_removes_its_copy(models, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = build_repo(tmp_path / "repo")
    build_dataset(tmp_path / "datasets", models["lossless"])
    folder = build_record(repo, "2026-01-01_sleeps", byte_table_script("import time; time.sleep(120)"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "PG_REPO_ROOT": str(repo), "PG_DATASETS_ROOT": str(tmp_path / "datasets"), "TMPDIR": str(scratch)}
    root = Path(__file__).resolve().parents[1]
    verify = subprocess.Popen([sys.executable, "-m", "tools.verify.cli", "tokenizer", str(folder)], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _processes_inside(scratch) and time.monotonic() < deadline and verify.poll() is None:
            time.sleep(0.1)
        assert _processes_inside(scratch), "the record's byte-table never started"
        verify.send_signal(signal.SIGTERM)
        _, err = verify.communicate(timeout=60)
    finally:
        if verify.poll() is None:
            verify.kill()
    assert verify.returncode == 130 and "interrupted" in err
    assert _processes_inside(scratch) == []
    assert list(scratch.iterdir()) == []

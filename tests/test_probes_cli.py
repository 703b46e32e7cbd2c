"""`verify probes` from the outside: exit codes, table and JSON output, and that a timed-out, interrupted or
terminated run leaves no process and no temporary folder behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.recordkit import repo_env
from tests.test_probes_kit import make_scorer_record, make_tree
from tools.verify.commands.probes import command, parse_seeds
from tools.verify.probes import probe_record
from tools.verify.sandbox import network_namespace_prefix


@pytest.fixture
def tree(tmp_path, monkeypatch):
    root, dataset = make_tree(tmp_path, monkeypatch)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return root, dataset, scratch


def invoke(*args: str):
    return CliRunner().invoke(command, [*args, "--rng-seed", "0", "-q"], catch_exceptions=False)


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def hanging_scorer(marker: str) -> str:
    """A scorer that starts a grandchild and then hangs. Where the sandbox has a PID namespace the grandchild also
    leaves the process group (setsid), which only the namespace can still reach."""
    escape = "os.setsid(); " if "-p" in network_namespace_prefix()[0] else ""
    return f'''
def score(table, tokens):
    import subprocess
    import sys
    import time
    subprocess.Popen([sys.executable, "-c", "import os, time; {escape}time.sleep(120)", "{marker}"])
    time.sleep(120)
'''


def test_parse_seeds_accepts_lists_and_repeats():
    assert parse_seeds(()) is None
    assert parse_seeds(("42,1337", " 2025 ")) == [42, 1337, 2025]
    with pytest.raises(ValueError, match="'x' is not a seed"):
        parse_seeds(("42,x",))


def test_passing_record_exits_0_with_a_table(tree):
    root, dataset, _ = tree
    result = invoke(str(make_scorer_record(root, dataset, "honest")))
    assert result.exit_code == 0, result.output
    assert "verdict: PASSED" in result.output
    for check_id in ("normalization", "causality", "rescore"):
        assert any(line.startswith(check_id) and "PASS" in line for line in result.output.splitlines())


def test_failing_record_exits_1_and_json_carries_the_evidence(tree):
    root, dataset, _ = tree
    result = invoke(str(make_scorer_record(root, dataset, "lookahead")), "--json", "--no-rescore")
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False and document["record"].endswith("2026-02-01_bigram")
    checks = {c["id"]: c for c in document["checks"]}
    assert checks["causality"]["status"] == "fail" and checks["rescore"]["status"] == "skip"
    evidence = checks["causality"]["evidence"]
    assert evidence["rng_seed"] == 0 and evidence["seeds"]["42"]["worst_ratio_to_tolerance"] > 1


def test_a_record_with_nothing_to_probe_is_never_passed(tree):
    # Issue 10: `verify probes` with every probe skipped said PASSED and exited 0. Nothing checked is exit 2.
    root, dataset, _ = tree
    result = invoke(str(make_scorer_record(root, dataset, "honest", artifacts=())))
    assert result.exit_code == 2
    assert "nothing checked: the record ships no artifact" in result.output
    assert "a human must review" in result.output and "PASSED" not in result.output


@pytest.mark.parametrize("make_args,expected", [
    (lambda record: [str(record) + "_missing"], "no such record folder"),
    (lambda record: [str(record), "--seeds", "forty-two"], "is not a seed"),
    (lambda record: [str(record), "--positions", "0"], "Invalid value for '--positions'"),
])
def test_bad_usage_exits_2_with_one_line(tree, make_args, expected):
    root, dataset, _ = tree
    record = make_scorer_record(root, dataset, "honest")
    result = CliRunner().invoke(command, make_args(record))
    assert result.exit_code == 2 and expected in result.output


def test_unreadable_dataset_exits_2_naming_the_file(tree):
    root, dataset, _ = tree
    record = make_scorer_record(root, dataset, "honest")
    (dataset / "manifest.json").write_text("{not json")
    result = invoke(str(record))
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "manifest.json: not valid JSON" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_help_teaches_inputs_outputs_and_exit_codes():
    text = CliRunner().invoke(command, ["--help"]).output
    for needle in ("score --artifact", "normalization", "causality", "rescore", "Examples:", "Exit codes: 0",
                   "--json", "a human", "EVAL_SEQ_LEN"):
        assert needle in text


def test_timeout_kills_the_scorer_and_everything_it_started(tree):
    root, dataset, scratch = tree
    marker = f"pg-probe-test-{uuid.uuid4().hex}"
    record = make_scorer_record(root, dataset, hanging_scorer(marker), claim_scorer="honest")
    started = time.monotonic()
    result = CliRunner().invoke(command, [str(record), "--timeout", "2", "-q"])
    assert result.exit_code == 1
    assert "did not finish within 2 s" in result.output
    assert time.monotonic() - started < 30
    assert processes_with(marker) == []
    assert list(scratch.iterdir()) == []


def test_ctrl_c_during_a_scorer_call_stops_it_and_cleans_up(tree):
    root, dataset, scratch = tree
    marker = f"pg-probe-test-{uuid.uuid4().hex}"
    record = make_scorer_record(root, dataset, hanging_scorer(marker), claim_scorer="honest")

    def interrupt_when_running() -> None:
        deadline = time.monotonic() + 30
        while not processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        probe_record(record, rng_seed=0, timeout_s=60)
    assert processes_with(marker) == []
    assert list(scratch.iterdir()) == []


def test_sigterm_to_the_cli_exits_130_and_leaves_nothing(tree, tmp_path):
    root, dataset, _ = tree
    marker = f"pg-probe-test-{uuid.uuid4().hex}"
    record = make_scorer_record(root, dataset, hanging_scorer(marker), claim_scorer="honest")
    private_tmp = tmp_path / "cli-tmp"
    private_tmp.mkdir()
    env = {**os.environ, **repo_env(root), "TMPDIR": str(private_tmp)}
    cli = subprocess.Popen([sys.executable, "-m", "tools.verify.cli", "probes", str(record), "-q"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with(marker), "the scorer never started"
        cli.send_signal(signal.SIGTERM)
        _, stderr = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 130 and "interrupted" in stderr
    assert processes_with(marker) == []
    assert list(private_tmp.iterdir()) == []

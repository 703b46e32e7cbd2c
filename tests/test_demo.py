"""`make demo` (tools/demo.py): its exit status says whether the pipeline worked, and its summary names only files
that exist. Every step is faked (the step runner is replaced), so nothing trains: the fake writes what the real
command would write, in a temporary repository root, and answers what `submit record --json` would answer.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tools import demo

REPO = Path(__file__).resolve().parent.parent
TRACK_DIR = Path("records") / demo.TRACK
PASSING = ("files", "schema", "track", "code_lines", "artifact_bytes", "train_time", "eval_time", "hardware", "claims_match_logs",
           "code_matches_logs", "config_matches_logs", "seeds_distinct", "min_seeds", "dataset", "score_progression")  # fmt: skip


def checks(fail: dict[str, str] | None = None, significance: str = "pass") -> list[dict[str, str]]:
    fail = fail or {}
    rows = [{"id": c, "status": "fail" if c in fail else "pass", "message": fail.get(c, "ok")} for c in PASSING]
    return rows + [{"id": "significance", "status": significance, "message": "p = 0.4 against SOTA - 0.005"}]


class FakeSteps:
    """Stands in for demo.run_step: the prepare, train and submit commands, with their effects on disk."""

    def __init__(self, root: Path, *, crash_seed: str | None = None, eval_ms: float = 30_000, verdict: str = "non-record",
                 fail: dict[str, str] | None = None, submit_rc: int | None = None, submit_stdout: str | None = None,
                 submit_stderr: str = "", missing: str | None = None) -> None:  # fmt: skip
        self.root, self.crash_seed, self.eval_ms = root, crash_seed, eval_ms
        self.verdict, self.fail = verdict, fail or {}
        self.submit_rc, self.submit_stdout, self.submit_stderr, self.missing = submit_rc, submit_stdout, submit_stderr, missing
        self.calls: list[list[str]] = []

    def __call__(self, title, argv, env=None, capture=False) -> demo.StepResult:
        self.calls.append(list(argv))
        if self.missing and self.missing in " ".join(argv):
            return demo.StepResult(127, error=f"cannot start {argv[0]}: No such file or directory")
        if "data/prepare.py" in argv:
            (self.root / "data" / "datasets" / demo.DATASET).mkdir(parents=True, exist_ok=True)
            return demo.StepResult(0)
        if "train_gpt.py" in argv:
            return self.train(env)
        assert argv[1:3] == ["record", "--json"] and capture, argv
        return self.submit(argv)

    def train(self, env) -> demo.StepResult:
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        if env["SEED"] == self.crash_seed:
            return demo.StepResult(1)  # a crash before the log is written
        (logs / f"{env['RUN_ID']}.txt").write_text(
            "step:10/100 train_loss:3.0 train_time:1000ms step_avg:100ms\n"
            f"final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.96 eval_time:{self.eval_ms:.0f}ms\n"
            f"eval_time:{self.eval_ms:.0f}ms\n"
        )
        return demo.StepResult(0)

    def submit(self, argv) -> demo.StepResult:
        if self.submit_rc is not None:
            return demo.StepResult(self.submit_rc, self.submit_stdout or "", self.submit_stderr)
        name = argv[argv.index("--name") + 1]
        slug = "2026-11-23_" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        destination = self.root / TRACK_DIR / slug
        rejected = self.verdict == "rejected"
        moved = None
        if rejected:
            moved = self.root / "logs" / "rejected" / slug
            moved.mkdir(parents=True)
        else:
            destination.mkdir(parents=True)
            (self.root / "leaderboard.md").write_text("# leaderboard\n")
        first = next(iter(self.fail.items()), None)
        reason = f"{first[0]}: {first[1]}" if first else "p = 0.4 against SOTA - 0.005"
        outcome = {
            "verdict": self.verdict, "accepted": not rejected, "reason": reason, "record": str(destination),
            "track": demo.TRACK, "dry_run": False,
            "leaderboard": {"path": str(self.root / "leaderboard.md"), "changed": not rejected, "diff": ""},
            "moved_to": str(moved) if moved else None, "tracking_run_id": None, "warnings": [],
            "report": {"ok": not rejected, "record": str(destination), "checks": checks(self.fail), "stats": {}},
        }  # fmt: skip
        return demo.StepResult(0 if not rejected else 1, json.dumps(outcome), "")


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    (tmp_path / "records").mkdir()
    shutil.copy(REPO / "records" / "tracks.toml", tmp_path / "records" / "tracks.toml")
    monkeypatch.setattr(demo, "repo_root", lambda: tmp_path)
    monkeypatch.setenv("DEMO_SECONDS", "180")
    monkeypatch.setenv("DEMO_SEEDS", "42 1337 2025")
    monkeypatch.setenv("DEMO_NAME", "Baseline demo")
    return tmp_path


def run_demo(monkeypatch, capsys, fake: FakeSteps) -> tuple[int, str]:
    monkeypatch.setattr(demo, "run_step", fake)
    code = demo.main()
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def summary_paths(output: str) -> list[str]:
    """The paths the "Where to look" block names (one per line: label, two spaces, path)."""
    block = output.split("\nWhere to look:\n", 1)[1].split("\n\n", 1)[0]
    return [re.match(r"^  .{16}  (\S+)", line).group(1) for line in block.splitlines() if line.strip()]


def assert_only_existing_paths(root: Path, output: str) -> list[str]:
    paths = summary_paths(output)
    assert paths, output
    missing = [p for p in paths if not (root / p).exists()]
    assert missing == [], f"the summary names paths that do not exist: {missing}"
    # Nothing else in the summary or the explanation points into records/ or logs/ unless it exists.
    tail = output.split("\n==> Summary\n", 1)[1]
    for mentioned in re.findall(r"(?:records|logs)/[\w./-]+", tail):
        assert (root / mentioned.rstrip(".,;:)")).exists(), mentioned
    return paths


def test_evaluation_over_the_cap_on_a_slow_machine_exits_0_and_explains(root, monkeypatch, capsys):
    fake = FakeSteps(root, eval_ms=75_300, verdict="rejected",
                     fail={"eval_time": "train_seed42.log: eval_time 75.3 s > cap 60 s (over by 15.3 s)"})
    code, output = run_demo(monkeypatch, capsys, fake)
    assert code == 0, output
    assert "rejected, as expected here" in output
    assert "slower or busier than the track's reference hardware (2 CPU cores)" in output
    assert "the track's 60 s cap" in output
    assert "not the pipeline failing" in output and "the same run should pass" in output
    assert "note: evaluation took 75.3 s, over the track's 60 s cap" in output  # said as soon as a seed shows it
    assert "make demo: every stage ran as designed; the judge's rejection above is expected here (exit 0)" in output
    paths = assert_only_existing_paths(root, output)
    assert not any(p.startswith(str(TRACK_DIR)) for p in paths), "a rejected record is never pointed at in records/"
    assert any(p.startswith("logs/rejected/") for p in paths)


def test_not_beating_the_sota_exits_0_as_a_non_record(root, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (root / "mlflow.db").write_bytes(b"")
    code, output = run_demo(monkeypatch, capsys, FakeSteps(root, verdict="non-record"))
    assert code == 0, output
    assert "accepted as a non-record entry" in output
    assert "A re-run of the baseline is expected not to beat the SOTA" in output
    assert "make demo: every stage ran as designed (exit 0)." in output
    paths = assert_only_existing_paths(root, output)
    assert any(p.startswith(str(TRACK_DIR)) for p in paths)
    assert "leaderboard.md" in paths and "mlflow.db" in paths


def test_a_new_sota_exits_0(root, monkeypatch, capsys):
    code, output = run_demo(monkeypatch, capsys, FakeSteps(root, verdict="record"))
    assert code == 0, output
    assert "ACCEPTED as the new SOTA" in output
    paths = assert_only_existing_paths(root, output)
    assert "mlflow.db" not in paths  # no store was written here, so none is named


def test_a_crashed_training_exits_non_zero_with_the_reason(root, monkeypatch, capsys):
    fake = FakeSteps(root, crash_seed="1337")
    code, output = run_demo(monkeypatch, capsys, fake)
    assert code == 1, output
    assert "make demo: FAILED at 'train seed 1337': train_gpt.py crashed (exit status 1) before writing a log" in output
    assert not any(call[1:2] == ["record"] for call in fake.calls), "no record is built after a crash"
    assert not any("2025" in " ".join(call) for call in fake.calls)
    paths = assert_only_existing_paths(root, output)
    assert [p for p in paths if p.startswith("logs/")] == [f"logs/{p.name}" for p in sorted((root / "logs").glob("*.txt"))]


def test_fewer_seeds_than_the_track_asks_for_exits_0_and_says_so(root, monkeypatch, capsys):
    monkeypatch.setenv("DEMO_SEEDS", "42")
    fake = FakeSteps(root, verdict="rejected", fail={"min_seeds": "1 scored seed(s) (seed 42) < track minimum 3"})
    code, output = run_demo(monkeypatch, capsys, fake)
    assert code == 0, output
    assert "the track asks for at least 3" in output
    assert_only_existing_paths(root, output)


def test_training_past_the_cap_asked_for_by_demo_seconds_is_explained(root, monkeypatch, capsys):
    monkeypatch.setenv("DEMO_SECONDS", "240")
    fake = FakeSteps(root, verdict="rejected", fail={"train_time": "train_seed42.log: train_time 240 s > cap 180 s"})
    code, output = run_demo(monkeypatch, capsys, fake)
    assert code == 0, output
    assert "DEMO_SECONDS=240 asked for more training than the track's 180 s cap" in output


def test_training_on_other_hardware_than_the_tracks_is_explained(root, monkeypatch, capsys):
    fake = FakeSteps(root, verdict="rejected", fail={
        "hardware": "train_seed42.log: ran on cuda, but track track_cpu_shakespeare runs on 2 CPU cores",
        "eval_time": "train_seed42.log: eval_time 61 s > cap 60 s"})  # fmt: skip
    code, output = run_demo(monkeypatch, capsys, fake)
    assert code == 0, output
    assert "REJECTED by eval_time, hardware" in output
    assert "not on the track's (2 CPU cores)" in output and "ran past the track's 60 s cap" in output


def test_a_check_the_baseline_must_pass_is_a_breakage(root, monkeypatch, capsys):
    fake = FakeSteps(root, verdict="rejected",
                     fail={"eval_time": "over the cap", "claims_match_logs": "submission.json val_bpb 1.9 != logs 1.96"})
    code, output = run_demo(monkeypatch, capsys, fake)
    assert code == 1, output
    assert "make demo: FAILED at 'judge': rejected by claims_match_logs" in output
    assert "a breakage in the pipeline or in the judge" in output
    assert_only_existing_paths(root, output)


def test_min_seeds_failing_with_enough_seeds_is_a_breakage(root, monkeypatch, capsys):
    fake = FakeSteps(root, verdict="rejected", fail={"min_seeds": "2 scored seed(s) < track minimum 3"})
    code, output = run_demo(monkeypatch, capsys, fake)
    assert code == 1, output


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "shown"),
    [
        (2, "", "error: logs/x.txt: cannot read log: No such file or directory\n", "error: logs/x.txt: cannot read log"),
        (1, "", "Traceback (most recent call last):\n  ...\nKeyError: 'val_bpb'\n", "KeyError: 'val_bpb'"),
        (0, "not json at all\n", "", "no verdict printed"),
    ],
    ids=["bad-input", "judge-crash", "no-verdict"],
)
def test_a_judge_that_gives_no_verdict_is_a_breakage(root, monkeypatch, capsys, rc, stdout, stderr, shown):
    fake = FakeSteps(root, submit_rc=rc, submit_stdout=stdout, submit_stderr=stderr)
    code, output = run_demo(monkeypatch, capsys, fake)
    assert code == 1, output
    assert "make demo: FAILED at 'judge'" in output and shown in output
    if stderr:  # the judge's own last words: echoed as they came, and quoted in the summary
        assert output.count(stderr.splitlines()[-1]) >= 2, output
    paths = summary_paths(output)
    assert not any(p.startswith("records/") or p == "leaderboard.md" for p in paths)


def test_a_missing_program_is_a_breakage(root, monkeypatch, capsys):
    code, output = run_demo(monkeypatch, capsys, FakeSteps(root, missing="submit"))
    assert code == 1, output
    assert "make demo: FAILED at 'judge': cannot start" in output


def test_a_failed_prepare_stops_the_demo(root, monkeypatch, capsys):
    def failing_prepare(title, argv, env=None, capture=False):
        assert "data/prepare.py" in argv, "nothing runs after a failed prepare"
        return demo.StepResult(1)

    monkeypatch.setattr(demo, "run_step", failing_prepare)
    code = demo.main()
    output = capsys.readouterr().out
    assert code == 1
    assert "make demo: FAILED at 'prepare': data/prepare.py exited with status 1" in output


def test_the_real_step_runner_reports_a_program_that_cannot_start(root):
    result = demo.run_step("nothing", [str(root / "no-such-program")])
    assert result.returncode == 127 and "cannot start" in result.error


@pytest.mark.parametrize(("name", "value"), [("DEMO_SECONDS", "soon"), ("DEMO_SECONDS", "0"), ("DEMO_SEEDS", " "),
                                             ("DEMO_SEEDS", "42 x"), ("DEMO_SEEDS", "42 42")])  # fmt: skip
def test_a_knob_the_demo_cannot_use_is_bad_usage(root, monkeypatch, capsys, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(demo, "run_step", lambda *a, **k: pytest.fail("no step runs with a bad knob"))
    assert demo.main() == 2
    assert capsys.readouterr().err.startswith(f"error: {name}: ")


def test_make_demo_runs_the_module_and_passes_its_exit_status():
    target = (REPO / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "-m tools.demo" in target
    assert "||" not in target and "; true" not in target  # the status is the demo's own

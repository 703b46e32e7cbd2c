"""The live progress display of `verify reproduce`: parsing trainer lines, bars on a TTY, plain lines elsewhere."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from tools.verify.reproduce.progress import (
    PlainSeedProgress,
    StepUpdate,
    TqdmSeedProgress,
    describe,
    fraction_done,
    parse_progress_line,
    progress_factory,
    run_summary,
)


def test_parse_train_and_val_lines():
    train = parse_progress_line("step:120/1000 train_loss:3.2100 train_time:12345ms step_avg:102.88ms")
    assert train == StepUpdate(step=120, planned_steps=1000, train_loss=3.21, val_bpb=None, train_time_ms=12345.0)
    val = parse_progress_line("step:0/1000 val_loss:6.9315 val_bpb:3.9876 train_time:0ms step_avg:0.00ms")
    assert val.val_bpb == 3.9876 and val.train_loss is None


@pytest.mark.parametrize("line", [
    "final_int8_zlib_roundtrip_exact val_loss:2.1 val_bpb:1.5",
    "Serialized model int8+zlib: 123 bytes",
    "warmup_step:3/100",
    "",
])
def test_other_lines_are_not_progress(line):
    assert parse_progress_line(line) is None


def test_the_early_stop_line_says_where_training_stopped():
    update = parse_progress_line("stopping_early: wallclock_cap train_time:179000ms step:950/1000")
    assert update == StepUpdate(step=950, planned_steps=1000, train_time_ms=179_000.0)


def test_fraction_is_the_further_of_steps_and_train_time():
    # A wall-clock-capped run plans a million steps: the time budget is the honest measure.
    capped = StepUpdate(step=900, planned_steps=1_000_000, train_time_ms=90_000)
    assert fraction_done(capped, train_cap_s=180) == pytest.approx(0.5)
    assert fraction_done(StepUpdate(step=50, planned_steps=100, train_time_ms=1000), train_cap_s=180) == 0.5
    assert fraction_done(StepUpdate(step=5, planned_steps=0), train_cap_s=None) == 0.0
    assert fraction_done(StepUpdate(step=10, planned_steps=5), train_cap_s=None) == 1.0


def test_describe_shows_step_loss_and_both_budgets():
    update = StepUpdate(step=120, planned_steps=1000, train_loss=3.21, train_time_ms=12_300)
    text = describe(update, wall_s=20.4, time_limit_s=360, train_cap_s=180)
    assert text == "step 120/1000 train_loss 3.2100 train 12.3/180 s wall 20/360 s"
    assert describe(None, wall_s=1, time_limit_s=360, train_cap_s=180) == "wall 1/360 s"


def _run(**fields):
    base = dict(status="pass", reproduced_bpb=1.5, claimed_bpb=1.501, timed_out=False, returncode=0, wall_s=12.0)
    return SimpleNamespace(**{**base, **fields})


def test_run_summary_says_how_the_seed_ended():
    assert run_summary(_run()) == "PASS val_bpb 1.500000 (claimed 1.501000) in 12 s"
    assert run_summary(_run(status="fail", reproduced_bpb=None, timed_out=True, returncode=None)).startswith(
        "FAIL killed at the time limit")
    assert "crashed (exit 1)" in run_summary(_run(status="fail", reproduced_bpb=None, returncode=1))
    assert "(no claim)" in run_summary(_run(status="warn", claimed_bpb=None))


def test_plain_lines_are_throttled_but_validation_always_shows():
    out = io.StringIO()
    sink = PlainSeedProgress(42, 0, 3, 360, 180, stream=out, interval_s=3600)
    sink.update("step:1/100 train_loss:5.0000 train_time:10ms step_avg:10.00ms")
    sink.update("step:2/100 train_loss:4.9000 train_time:20ms step_avg:10.00ms")  # within the interval: hidden
    sink.update("some other output")
    sink.update("step:100/100 val_loss:2.0 val_bpb:1.5000 train_time:1000ms step_avg:10.00ms")
    sink.close(_run())
    lines = out.getvalue().splitlines()
    assert lines[0] == "seed 42 [1/3]: started (time limit 360 s)"
    assert lines[1].startswith("seed 42 [1/3]: step 1/100 train_loss 5.0000 train 0.0/180 s wall")
    assert lines[2].startswith("seed 42 [1/3]: step 100/100 train_loss 4.9000 val_bpb 1.5000 train 1.0/180 s")
    assert lines[3] == "seed 42 [1/3]: PASS val_bpb 1.500000 (claimed 1.501000) in 12 s"
    assert len(lines) == 4


def test_a_tty_gets_a_tqdm_bar_that_follows_the_training_fraction():
    out = io.StringIO()
    sink = progress_factory(out, tty=True)(1337, 1, 3, 360.0, 180.0)
    assert isinstance(sink, TqdmSeedProgress)
    sink.update("step:10/1000000 train_loss:4.0000 train_time:45000ms step_avg:4500.00ms")
    assert sink.bar.n == 250  # per mille: 45 s of a 180 s budget
    sink.close(_run())
    text = out.getvalue()
    assert "seed 1337 [2/3]" in text and "PASS val_bpb 1.500000" in text and "100%" in text


def test_a_non_tty_gets_plain_lines():
    out = io.StringIO()
    assert isinstance(progress_factory(out)(42, 0, 1, 10.0, None), PlainSeedProgress)

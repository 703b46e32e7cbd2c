"""The log parser on the public competition's line shapes (synthetic logs from tests/publickit.py)."""

from __future__ import annotations

from tests.publickit import SCRIPT, SEP, april_log, march_log
from tools.records.logparse import parse_log_text


def test_april_format_reads_seed_steps_train_time_and_settings():
    log = parse_log_text(april_log(seed=42, train_ms=590_022, steps=5967, settings={"ttt_enabled": "True"}))
    assert (log.seed, log.steps, log.planned_steps, log.train_time_ms) == (42, 5967, 20000, 590_022.0)
    assert log.stopped_early
    assert log.hyperparameters["ttt_enabled"] == "True"
    assert log.hyperparameters["compressor"] == "brotli"
    assert log.code == SCRIPT
    assert log.dataset_name == "fineweb10B_sp8192"
    # `N/M val_loss: X val_bpb: Y` lines are the validation curve, `train_time: 1.0m` is minutes
    assert [(p.step, p.val_bpb) for p in log.curve if p.val_bpb is not None][-1][0] == 5967
    assert any(p.train_time_ms == 60_000.0 for p in log.curve)


def test_a_header_line_of_100_equals_is_not_the_end_of_a_code_block():
    log = parse_log_text(april_log(code=None))
    assert log.code is None  # no `Source code:` block: no embedded code, not "the hyperparameters"
    assert log.seed == 42 and log.train_time_ms == 588_138.0
    assert any("no code block" in warning for warning in log.warnings)


def test_march_format_still_takes_the_code_before_the_first_separator():
    log = parse_log_text(march_log())
    assert log.code == SCRIPT
    assert (log.seed, log.train_time_ms, log.val_bpb) == (1337, 600_038.0, 1.2244)


def test_every_final_score_line_after_training_is_kept_in_order():
    finals = ("quantized val_loss:2.84 val_bpb:1.1024 eval_time:7531ms",
              "quantized_sliding_window val_loss:2.80 val_bpb:1.0855 eval_time:83990ms",
              "diagnostic quantized_ttt val_loss:2.7 val_bpb:1.0700 eval_time:9ms",
              "DIAGNOSTIC post_ema val_loss:2.7 val_bpb:1.0600 eval_time:9ms",
              "quantized_ttt_phased val_loss:2.79 val_bpb:1.0810 eval_time:400000ms")
    log = parse_log_text(april_log(finals=finals))
    assert [(f.label, f.val_bpb) for f in log.final_scores] == [
        ("pre-quantization post-ema", 1.08995907), ("quantized", 1.1024), ("quantized_sliding_window", 1.0855),
        ("quantized_ttt_phased", 1.0810)]  # diagnostic lines, in either case, are never scores
    assert log.val_bpb == 1.0810  # the default: the last final line


def test_compressed_code_size_is_kept_apart_from_the_raw_one():
    log = parse_log_text(april_log(code_size=121_884, compressed_code=27_310))
    assert (log.code_bytes, log.code_bytes_compressed) == (121_884, 27_310)


def test_unix_timestamp_prefixes_are_read_through():
    log = parse_log_text(april_log(seed=7, timestamps=True))
    assert (log.seed, log.steps, log.train_time_ms) == (7, 4988, 588_138.0)
    assert log.hyperparameters["seed"] == "7"
    assert any("timestamp" in warning for warning in log.warnings)


def test_a_banner_before_the_first_separator_is_parsed_as_code_text_but_kept_apart():
    text = "Running GDN hybrid with:\n  layers 8\n" + SEP + "\nseed:1\nfinal_x val_loss:1 val_bpb:1.5\n"
    log = parse_log_text(text)
    assert log.code == "Running GDN hybrid with:\n  layers 8"  # the judge decides it is not Python (see checks)
    assert log.seed == 1


def test_runs_appended_to_one_log_are_read_from_the_last_run():
    first = march_log(code=SCRIPT.replace("train", "old"), bpb=1.30, seed=1)
    last = march_log(code=SCRIPT, bpb=1.2244, seed=1337)
    log = parse_log_text(first + last)
    assert (log.code, log.val_bpb, log.seed) == (SCRIPT, 1.2244, 1337)
    assert any("appended runs; the last one (from line" in warning for warning in log.warnings)
    assert parse_log_text(last).warnings == ()  # one run: nothing said

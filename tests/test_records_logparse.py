"""tools.records.logparse: our log format read strictly, the public competition's variants read tolerantly."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.records.logparse import extract_code, parse_log, parse_log_text, parse_tokens
from tools.records.model import CurvePoint, RecordError

SEPARATOR = "=" * 100
CODE = 'import os\n\nprint("héllo")  # non-ASCII survives byte for byte\n'


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def contract_log(code: str = CODE, *, val_bpb: float = 1.23456789, val_loss: float = 2.34567891, seed: int = 42,
                 train_ms: int = 179_876, eval_ms: int = 41_234, model_bytes: int = 15_000_000,
                 tail: list[str] | None = None) -> str:
    """A log as docs/CONTRACTS.md §2 prescribes (what train_gpt.py writes)."""
    code_bytes = len(code.encode("utf-8"))
    lines = [
        f"run_id:run-{seed} seed:{seed}",
        f"code_sha256:{sha(code)} code_bytes:{code_bytes}",
        'hardware: device:cpu cpu_model:"AMD EPYC 7B13" cpu_cores:2 world_size:1',
        "software: torch:2.13.0 python:3.11.7 sentencepiece:0.2.1",
        f"dataset: name:shakespeare_sp1024 manifest_sha256:{'1' * 64} tokenizer_sha256:{'2' * 64}",
        "val_tokens:155001 val_bytes:620853",
        "model_params:1234567",
        'hyperparameters: ITERATIONS=2000 LR=0.02 RUN_NOTE="two words"',
        "step:0/2000 val_loss:6.9315 val_bpb:3.9876 train_time:0ms step_avg:0.01ms",
        "step:1/2000 train_loss:6.9300 train_time:95ms step_avg:95.00ms",
        "step:1000/2000 train_loss:3.1000 train_time:90000ms step_avg:90.00ms",
        "step:1900/2000 val_loss:2.4000 val_bpb:1.3000 train_time:179800ms step_avg:94.63ms",
        f"stopping_early: wallclock_cap train_time:{train_ms}ms step:1900/2000",
        "peak memory allocated: 512 MiB",
        f"Serialized model int8+zlib: {model_bytes} bytes",
        f"Code size: {code_bytes} bytes",
        f"Total submission size int8+zlib: {model_bytes + code_bytes} bytes",
        f"final_int8_zlib_roundtrip val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} eval_time:{eval_ms - 3}ms",
        f"final_int8_zlib_roundtrip_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}",
        f"eval_time:{eval_ms}ms",
        f"train_time:{train_ms}ms",
    ]
    if tail is not None:
        lines = tail
    return code + "\n" + SEPARATOR + "\n" + "\n".join(lines) + "\n"


def wild_log(*final_lines: str, code: str | None = CODE) -> str:
    """A public-competition log: its own metadata lines, training, sizes, then the given final lines."""
    lines = [
        "logs/8f2c.txt",
        "val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model",
        "train_loader:dataset:fineweb10B_sp1024 train_shards:80",
        "val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:62021632",
        "model_params:17059912",
        "world_size:8 grad_accum_steps:1",
        "seed:1337",
        "warmup_step:1/20",
        "step:0/20000 val_loss:6.9357 val_bpb:4.1077 train_time:0ms step_avg:0.01ms",
        "step:1/20000 train_loss:6.9370 train_time:28ms step_avg:28.20ms",
        "step:13780/20000 val_loss:2.0606 val_bpb:1.2204 train_time:600031ms step_avg:43.54ms",
        "stopping_early: wallclock_cap train_time:600031ms step:13780/20000",
        "peak memory allocated: 10184 MiB reserved: 10588 MiB",
        "Serialized model: 67224983 bytes",
        "Code size: 47686 bytes",
        "Total submission size: 67272669 bytes",
        "Serialized model int6+lzma: 15815847 bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)",
        "Total submission size int6+lzma: 15863533 bytes",
        *final_lines,
    ]
    body = "\n".join(lines) + "\n"
    return body if code is None else code + "\n" + SEPARATOR + "\n" + body


# -- our format -------------------------------------------------------------------------------------------------


def test_contract_log_reads_every_field():
    parsed = parse_log_text(contract_log(), "logs/run-42.txt")
    assert parsed.path == "logs/run-42.txt"
    assert parsed.code == CODE
    assert (parsed.run_id, parsed.seed) == ("run-42", 42)
    assert (parsed.val_bpb, parsed.val_loss) == (1.23456789, 2.34567891)
    assert parsed.score_line == "final_int8_zlib_roundtrip_exact val_loss:2.34567891 val_bpb:1.23456789"
    assert (parsed.steps, parsed.planned_steps, parsed.stopped_early) == (1900, 2000, True)
    assert (parsed.train_time_ms, parsed.eval_time_ms) == (179_876, 41_234)
    code_bytes = len(CODE.encode("utf-8"))
    assert (parsed.model_bytes, parsed.code_bytes, parsed.bytes_total) == (15_000_000, code_bytes, 15_000_000 + code_bytes)
    assert parsed.code_sha256 == sha(CODE)
    assert (parsed.dataset_name, parsed.manifest_sha256, parsed.tokenizer_sha256) == ("shakespeare_sp1024", "1" * 64, "2" * 64)
    assert (parsed.val_tokens, parsed.val_bytes) == (155001, 620853)
    assert dict(parsed.hardware) == {"device": "cpu", "cpu_model": "AMD EPYC 7B13", "cpu_cores": "2", "world_size": "1"}
    assert dict(parsed.software) == {"torch": "2.13.0", "python": "3.11.7", "sentencepiece": "0.2.1"}
    assert dict(parsed.hyperparameters) == {"ITERATIONS": "2000", "LR": "0.02", "RUN_NOTE": "two words"}
    assert parsed.curve == (
        CurvePoint(0, None, 6.9315, 3.9876, 0.0),
        CurvePoint(1, 6.93, None, None, 95.0),
        CurvePoint(1000, 3.1, None, None, 90000.0),
        CurvePoint(1900, None, 2.4, 1.3, 179800.0),
    )
    assert parsed.missing == () and parsed.warnings == ()


def test_explicit_times_win_over_step_and_score_lines():
    log = contract_log(train_ms=180_000, eval_ms=50_000)
    parsed = parse_log_text(log)
    assert (parsed.train_time_ms, parsed.eval_time_ms) == (180_000, 50_000)
    without = "\n".join(line for line in log.split("\n") if not line.startswith(("train_time:", "eval_time:")))
    parsed = parse_log_text(without)
    assert parsed.train_time_ms == 180_000  # from stopping_early
    assert parsed.eval_time_ms == 49_997  # from the score line's non-_exact twin


def test_training_time_from_the_last_step_when_not_stopped_early():
    tail = ["step:1/10 train_loss:5.0 train_time:10ms step_avg:10ms", "step:10/10 val_loss:3.0 val_bpb:2.0 train_time:99ms step_avg:9.9ms",
            "final_x_exact val_loss:3.0 val_bpb:2.0"]
    parsed = parse_log_text(contract_log(tail=tail))
    assert (parsed.train_time_ms, parsed.steps, parsed.planned_steps, parsed.stopped_early) == (99, 10, 10, False)


@pytest.mark.parametrize(
    "line",
    [
        "step:7/9 val_loss:2.5 val_bpb:1.25 train_time:70ms step_avg:10.00ms",  # the usual shape (fast path)
        "step:7/9 val_bpb:1.25 val_loss:2.5 train_time:70ms",  # reordered
        "step:7/9  val_loss:2.5 lr:0.01 val_bpb:1.25 step_avg:10.00ms train_time:70ms",  # extra fields
    ],
)
def test_step_lines_in_any_field_order_read_the_same(line):
    parsed = parse_log_text(line + "\n")
    assert parsed.curve == (CurvePoint(7, None, 2.5, 1.25, 70.0),)
    assert (parsed.steps, parsed.planned_steps, parsed.train_time_ms) == (7, 9, 70.0)


def test_unreadable_step_line_is_warned():
    parsed = parse_log_text("step:seven/9 train_loss:1\n")
    assert parsed.steps is None and parsed.warnings[-1].startswith("line 1: unreadable step line")


def test_code_is_extracted_byte_exact_with_tricky_content():
    code = ("#!/usr/bin/env python\r\n# CRLF line, a tab\tand a BOM-less unicode: ∑ ▁ 🙂\n"
            + "=" * 99 + "\n" + "s = '" + "=" * 100 + "'  # 100 '=' not alone on its line\n"
            + "\n\n" + "x = 1  # trailing blank lines above\n")
    log = contract_log(code)
    assert extract_code(log) == code
    parsed = parse_log_text(log)
    assert parsed.code.encode("utf-8") == code.encode("utf-8")
    assert parsed.code_sha256 == sha(code) and parsed.warnings == ()
    assert parsed.val_bpb == 1.23456789


def test_code_holding_a_separator_line_is_cut_where_the_logged_hash_says():
    code = "a = 1\n\n" + SEPARATOR + "\nb = 2\n"
    assert extract_code(contract_log(code)) == "a = 1\n"  # the contract's rule alone cuts too early
    parsed = parse_log_text(contract_log(code))
    assert parsed.code == code and parsed.val_bpb == 1.23456789 and parsed.run_id == "run-42"
    assert any("chosen by code_sha256" in w for w in parsed.warnings)


def test_logged_code_hash_and_size_mismatches_are_warned():
    log = contract_log().replace(f"code_sha256:{sha(CODE)}", f"code_sha256:{'f' * 64}")
    assert any("differs from the embedded code" in w for w in parse_log_text(log).warnings)
    size = len(CODE.encode("utf-8"))
    log = contract_log().replace(f"Code size: {size} bytes", f"Code size: {size + 1} bytes")
    parsed = parse_log_text(log)
    assert parsed.code_bytes == size + 1  # what the log says, reported as is
    assert any(f"logged code size {size + 1} differs" in w for w in parsed.warnings)


def test_extract_code_without_a_separator():
    assert extract_code("step:1/2 train_loss:1\n") is None
    assert extract_code("code\n" + "=" * 99 + "\nrest\n") is None
    assert extract_code("\n" + SEPARATOR + "\nrun_id:x\n") == ""
    assert extract_code("code\n\n" + SEPARATOR) == "code\n"  # cut off right after the separator


def test_truncated_log_has_no_score_and_says_so():
    full = contract_log().split("\n")
    cut = "\n".join(full[: full.index("peak memory allocated: 512 MiB")])
    parsed = parse_log_text(cut)
    assert parsed.val_bpb is None and parsed.val_loss is None and parsed.score_line is None
    assert {"val_bpb", "val_loss", "eval_time_ms", "bytes_total", "model_bytes"} <= set(parsed.missing)
    assert parsed.steps == 1900 and parsed.train_time_ms == 179_876  # what it did find
    assert "train_time_ms" not in parsed.missing and "seed" not in parsed.missing


def test_log_without_any_score_or_code():
    parsed = parse_log_text("hello\nworld\n")
    assert parsed.code is None and parsed.val_bpb is None
    assert {"code", "val_bpb", "seed", "train_time_ms"} <= set(parsed.missing)
    assert any("no code block" in w for w in parsed.warnings)


def test_intermediate_validation_is_never_the_score():
    tail = ["step:0/10 val_loss:6.9 val_bpb:4.0 train_time:0ms", "step:10/10 val_loss:3.0 val_bpb:2.0 train_time:9ms"]
    parsed = parse_log_text(contract_log(tail=tail))
    assert parsed.val_bpb is None and "val_bpb" in parsed.missing


def test_our_format_requires_the_exact_line():
    # A log with our code_sha256 line is read strictly: the 4-decimal line is not a stand-in for the score.
    log = "\n".join(line for line in contract_log().split("\n") if "_exact" not in line)
    parsed = parse_log_text(log)
    assert parsed.val_bpb is None and "val_bpb" in parsed.missing
    assert any("no final *_exact score line" in w for w in parsed.warnings)
    # An unreadable _exact line is still the score line; its score is unknown, not taken from another line.
    parsed = parse_log_text(contract_log().replace("val_bpb:1.23456789", "val_bpb:nan"))
    assert parsed.val_bpb is None and parsed.score_line.endswith("val_bpb:nan")


def test_a_final_line_before_training_ended_is_not_the_score():
    parsed = parse_log_text("\n".join(["final_eval val_loss:3.0 val_bpb:2.0", "step:10/10 train_loss:3.0 train_time:9ms"]))
    assert parsed.val_bpb is None
    assert any("before training ended" in w for w in parsed.warnings)


def test_unreadable_values_are_warned_with_the_line_number_not_guessed():
    log = contract_log().replace("val_tokens:155001", "val_tokens:lots")
    parsed = parse_log_text(log)
    assert parsed.val_tokens is None and "val_tokens" in parsed.missing
    line = log.split("\n").index("val_tokens:lots val_bytes:620853") + 1
    assert f"line {line}: val_tokens: cannot read 'lots'" in parsed.warnings
    log = wild_log("final_x val_loss:2.0 val_bpb:1.5 eval_time:3ms", "final_y_exact val_loss:2.0 val_bpb:inf")
    parsed = parse_log_text(log)
    assert parsed.val_bpb is None and any("val_bpb is not a finite number: 'inf'" in w for w in parsed.warnings)


def test_conflicting_metadata_keeps_the_first_and_warns():
    log = contract_log().replace("model_params:1234567", "seed:7")
    parsed = parse_log_text(log)
    assert parsed.seed == 42
    assert any("seed: 7 conflicts with the earlier 42" in w for w in parsed.warnings)


def test_tokens_with_quotes_and_equals():
    assert parse_tokens('a:1 b:"x y \\" z" C=3 d:') == {"a": "1", "b": 'x y " z', "C": "3"}
    assert parse_tokens("run_id:abc seed:42 seed:43") == {"run_id": "abc", "seed": "42"}


# -- public-competition variants (one per final-line kind) ------------------------------------------------------


@pytest.mark.parametrize(
    ("final_lines", "bpb", "loss", "eval_ms"),
    [
        (["final_int8_zlib_roundtrip val_loss:2.0727 val_bpb:1.2276 eval_time:1380ms",
          "final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22756285"], 1.22756285, 2.07269931, 1380),
        (["final_int6_roundtrip val_loss:1.9500 val_bpb:1.1550 eval_time:2100ms",
          "final_int6_roundtrip_exact val_loss:1.95001234 val_bpb:1.15498765"], 1.15498765, 1.95001234, 2100),
        (["final_int6_roundtrip_exact val_loss:1.95001234 val_bpb:1.15498765",
          "final_int6_sliding_window val_loss:1.8858 val_bpb:1.1169 stride:64 eval_time:73455ms",
          "final_int6_sliding_window_exact val_loss:1.88580123 val_bpb:1.11690456"], 1.11690456, 1.88580123, 73455),
        (["final_int6_sliding_window_exact val_loss:1.88580123 val_bpb:1.11690456",
          "legal_ttt val_loss:1.8700 val_bpb:1.1075 eval_time:412000ms",
          "legal_ttt_exact val_loss:1.87001111 val_bpb:1.10752222"], 1.10752222, 1.87001111, 412000),
        (["final_sliding_window val_loss:1.9000 val_bpb:1.1250 eval_time:80000ms",
          "final_sliding_window_exact val_loss:1.90003333 val_bpb:1.12504444"], 1.12504444, 1.90003333, 80000),
        (["final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22756285",
          "final_int8_zlib_roundtrip_exact sliding val_loss:2.01000001 val_bpb:1.19000002"], 1.19000002, 2.01000001, None),
        (["diagnostic quantized val_loss:1.8000 val_bpb:1.0660 eval_time:9000ms",
          "quantized_ttt_phased val_loss:1.8200 val_bpb:1.0780 eval_time:501234ms"], 1.078, 1.82, 501234),
    ],
    ids=["int8_zlib", "int6_roundtrip", "int6_sliding_window", "legal_ttt", "sliding_window", "sliding_variant",
         "ttt_phased"],
)
def test_public_final_lines(final_lines, bpb, loss, eval_ms):
    parsed = parse_log_text(wild_log(*final_lines))
    assert (parsed.val_bpb, parsed.val_loss, parsed.eval_time_ms) == (bpb, loss, eval_ms)
    assert parsed.score_line == final_lines[-1]


def test_eval_time_comes_from_the_twin_of_the_same_evaluation():
    parsed = parse_log_text(wild_log(
        "final_int8_zlib_roundtrip val_loss:2.0727 val_bpb:1.2276 eval_time:1380ms",
        "final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22756285",
        "final_int8_zlib_roundtrip sliding val_loss:2.0100 val_bpb:1.1900 eval_time:70123ms",
        "final_int8_zlib_roundtrip_exact sliding val_loss:2.01000001 val_bpb:1.19000002",
    ))
    assert (parsed.val_bpb, parsed.eval_time_ms) == (1.19000002, 70123)
    # Without its own twin the sliding score does not borrow the plain round trip's time.
    parsed = parse_log_text(wild_log(
        "final_int8_zlib_roundtrip val_loss:2.0727 val_bpb:1.2276 eval_time:1380ms",
        "final_int8_zlib_roundtrip_exact sliding val_loss:2.01000001 val_bpb:1.19000002",
    ))
    assert parsed.eval_time_ms is None and "eval_time_ms" in parsed.missing


def test_public_log_metadata_sizes_and_stop():
    parsed = parse_log_text(wild_log("final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22756285"))
    assert parsed.seed == 1337 and parsed.run_id is None
    assert (parsed.steps, parsed.planned_steps, parsed.stopped_early, parsed.train_time_ms) == (13780, 20000, True, 600031)
    # The raw size comes first, the compressed one last: the last wins.
    assert (parsed.model_bytes, parsed.code_bytes, parsed.bytes_total) == (15815847, 47686, 15863533)
    assert (parsed.dataset_name, parsed.val_tokens) == ("fineweb10B_sp1024", 62021632)
    assert "val_bytes" in parsed.missing and "code_sha256" in parsed.missing and "eval_time_ms" in parsed.missing
    assert parsed.curve[-1] == CurvePoint(13780, None, 2.0606, 1.2204, 600031.0)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Total submission size int8+zlib: 15863489 bytes", ("bytes_total", 15863489)),
        ("Total submission size quantized+brotli: 15900001 bytes", ("bytes_total", 15900001)),
        ("Total submission size quantized+pergroup: 15999999 bytes", ("bytes_total", 15999999)),
        ("Serialized model quantized+brotli: 15850000 bytes", ("model_bytes", 15850000)),
        ("Serialized model int8+zlib: 15815847 bytes (payload:17178912 payload_ratio:3.91x)", ("model_bytes", 15815847)),
        ("Code size: 48213 bytes", ("code_bytes", 48213)),
    ],
)
def test_size_lines(line, expected):
    parsed = parse_log_text("\n" + SEPARATOR + "\n" + line + "\n")
    field, value = expected
    assert getattr(parsed, field) == value


def test_diagnostic_is_never_the_score_even_when_exact_and_last():
    parsed = parse_log_text(wild_log(
        "final_int6_roundtrip_exact val_loss:1.95 val_bpb:1.155",
        "diagnostic quantized_exact val_loss:1.10 val_bpb:0.650",
        "diagnostic final_ttt val_loss:1.10 val_bpb:0.650 eval_time:1ms",
    ))
    assert parsed.val_bpb == 1.155 and parsed.eval_time_ms is None


def test_an_exact_line_wins_over_a_later_plain_final_line():
    parsed = parse_log_text(wild_log("final_int8_zlib_roundtrip_exact val_loss:2.07 val_bpb:1.2275",
                                     "final_other val_loss:1.50 val_bpb:0.9000 eval_time:5ms"))
    assert parsed.val_bpb == 1.2275


def test_progress_lines_with_val_bpb_are_not_scores():
    parsed = parse_log_text(wild_log("ttt_chunk:5/100 val_bpb:1.05", "val_bpb:enabled"))
    assert parsed.val_bpb is None


def test_public_log_without_code_reads_every_line():
    parsed = parse_log_text(wild_log("final_int8_zlib_roundtrip_exact val_loss:2.07 val_bpb:1.2275", code=None))
    assert parsed.code is None and parsed.val_bpb == 1.2275 and parsed.seed == 1337


# -- files ------------------------------------------------------------------------------------------------------


def test_parse_log_reads_a_file_and_refuses_unreadable_ones(tmp_path):
    path = tmp_path / "train_seed42.log"
    path.write_bytes(contract_log().encode("utf-8"))
    assert parse_log(path).val_bpb == 1.23456789
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"\n \n")
    with pytest.raises(RecordError, match="empty log"):
        parse_log(empty)
    binary = tmp_path / "binary.log"
    binary.write_bytes(b"line one\nline two\x00\x01\x02")
    with pytest.raises(RecordError) as caught:
        parse_log(binary)
    assert caught.value.where == f"{binary}:2" and "binary file" in caught.value.message
    latin = tmp_path / "latin.log"
    latin.write_bytes(b"ok\nok\ncaf\xe9\n")
    with pytest.raises(RecordError) as caught:
        parse_log(latin)
    assert caught.value.where == f"{latin}:3" and caught.value.message == "not UTF-8 (invalid byte at offset 9)"
    with pytest.raises(RecordError, match="cannot read log"):
        parse_log(tmp_path / "absent.log")
    link = tmp_path / "link.log"
    link.symlink_to(path)
    with pytest.raises(RecordError, match="cannot read log"):
        parse_log(link, follow_symlinks=False)


def test_oversized_log_is_read_up_to_the_cap_and_flagged(tmp_path):
    path = tmp_path / "big.log"
    text = contract_log()
    path.write_bytes(text.encode("utf-8"))
    cap = text.index("final_int8_zlib_roundtrip_exact") + 5  # the score line lies past the cap
    parsed = parse_log(path, max_bytes=cap)
    assert parsed.val_bpb is None and "val_bpb" in parsed.missing
    assert parsed.warnings[0].startswith(f"log is larger than {cap} bytes")
    assert parsed.code == CODE
    path.write_bytes(b"x" * 100)
    with pytest.raises(RecordError, match="no line break in the first 10 bytes"):
        parse_log(path, max_bytes=10)


# -- properties -------------------------------------------------------------------------------------------------

scores = st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bpb=scores, loss=scores, seed=st.integers(0, 2**31), train_ms=st.integers(0, 10**9),
       eval_ms=st.integers(0, 10**9), model_bytes=st.integers(0, 10**10),
       code=st.text(st.characters(blacklist_categories=["Cs"]), max_size=300))
def test_property_numbers_written_by_the_log_writer_read_back(bpb, loss, seed, train_ms, eval_ms, model_bytes, code):
    code = code.replace("\n" + SEPARATOR + "\n", "\n")  # a source line of 100 '=' is tested on its own
    parsed = parse_log_text(contract_log(code + "\n", val_bpb=bpb, val_loss=loss, seed=seed, train_ms=train_ms,
                                         eval_ms=eval_ms, model_bytes=model_bytes))
    assert parsed.val_bpb == float(f"{bpb:.8f}") and parsed.val_loss == float(f"{loss:.8f}")
    assert (parsed.seed, parsed.train_time_ms, parsed.eval_time_ms, parsed.model_bytes) == (seed, train_ms, eval_ms, model_bytes)
    assert parsed.code == code + "\n"


line_pieces = st.sampled_from([
    "step:", "1/2", "val_bpb:", "val_loss:", "_exact", "diagnostic", "stopping_early:", "train_time:", "ms",
    "Serialized model", "Code size:", "Total submission size", ": ", " bytes", "seed:", "run_id:", '"', "\\",
    "hardware:", "=", SEPARATOR, "\n", "\r\n", " ", "1e999", "nan", "-1", "3.5", "x",
])


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(line_pieces | st.text(max_size=8), max_size=60))
def test_property_parser_never_raises_on_arbitrary_text(pieces):
    parsed = parse_log_text("".join(pieces))
    assert set(parsed.missing) <= set(type(parsed).__dataclass_fields__)
    assert parsed.val_bpb is None or parsed.score_line is not None

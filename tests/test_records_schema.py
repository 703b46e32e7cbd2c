"""tools.records.schema and tools.records.legacy: strict schema 1, field-named errors, the legacy reader, the writer."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.records.model import RecordError, SeedResult, Submission
from tools.records.schema import (
    SUBMISSION_JSON_SCHEMA,
    load_submission,
    submission_from_dict,
    submission_to_dict,
)

SHA = "ab" * 32


def seed_result(bpb: float, seed: int) -> dict:
    return {
        "val_bpb": bpb,
        "val_loss": bpb * 1.6,
        "steps": 1200,
        "train_time_s": 179.5,
        "eval_time_s": 12.25,
        "artifact_bytes": 15_000_000,
        "code_bytes": 48_213,
        "bytes_total": 15_048_213,
        "log": f"train_seed{seed}.log",
        "code_sha256": SHA,
    }


def valid_document() -> dict:
    return {
        "schema": 1,
        "author": "Ada",
        "github_id": "ada",
        "name": "Deeper MLP",
        "blurb": "two more layers",
        "date": "2026-03-20T00:00:00Z",
        "track": "track_cpu_shakespeare",
        "val_bpb": 1.5,
        "val_loss": 2.4,
        "val_bpb_std": 0.001,
        "seeds": [42, 1337, 2025],
        "seed_results": {str(s): seed_result(1.5 + d, s) for s, d in ((42, 0.001), (1337, -0.001), (2025, 0.0))},
    }


def write(tmp_path: Path, document: dict | str) -> Path:
    path = tmp_path / "submission.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    return path


def error_of(tmp_path: Path, document: dict | str) -> str:
    with pytest.raises(RecordError) as caught:
        load_submission(write(tmp_path, document))
    assert caught.value.where == str(tmp_path / "submission.json")
    assert "\n" not in str(caught.value)  # one line
    return caught.value.message


def test_valid_file_reads_every_field(tmp_path):
    submission = load_submission(write(tmp_path, valid_document()))
    assert submission.schema == 1 and submission.legacy is False and submission.unknown_fields == ()
    assert (submission.author, submission.github_id, submission.name) == ("Ada", "ada", "Deeper MLP")
    assert submission.date == dt.datetime(2026, 3, 20, tzinfo=dt.timezone.utc)
    assert submission.track == "track_cpu_shakespeare"
    assert submission.seeds == (42, 1337, 2025)
    assert list(submission.seed_results) == [42, 1337, 2025]
    first = submission.seed_results[42]
    assert first == SeedResult(seed=42, **seed_result(1.501, 42))
    assert isinstance(first.steps, int) and isinstance(first.artifact_bytes, int)


def test_date_only_and_single_seed_without_std(tmp_path):
    document = valid_document()
    document.update(date="2026-03-20", seeds=[7], val_bpb_std=None, seed_results={"7": seed_result(1.5, 7)})
    submission = load_submission(write(tmp_path, document))
    assert submission.date == dt.date(2026, 3, 20) and submission.val_bpb_std is None


def mutate(path: str, value):
    """A document with the field at dotted `path` set to `value` (or removed, for value is REMOVE)."""
    document = valid_document()
    *parents, last = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    if value is REMOVE:
        del target[last]
    else:
        target[last] = value
    return document


REMOVE = object()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("seed_results.1337.val_bpb", "1.2", "seed_results.1337.val_bpb: Input should be a valid number"),
        ("seed_results.1337.val_bpb", None, "seed_results.1337.val_bpb: Input should be a valid number"),
        ("seed_results.42.steps", 12.5, "seed_results.42.steps: Input should be a valid integer"),
        ("seed_results.42.steps", True, "seed_results.42.steps: Input should be a valid integer"),
        ("seed_results.42.artifact_bytes", "15000000", "seed_results.42.artifact_bytes: Input should be a valid integer"),
        ("seed_results.42.bytes_total", -1, "seed_results.42.bytes_total: Input should be greater than or equal to 0"),
        ("seed_results.42.code_sha256", "XYZ", "seed_results.42.code_sha256: String should match pattern"),
        ("seed_results.42.log", REMOVE, "seed_results.42.log: Field required"),
        ("seed_results.42.log", "../../etc/passwd", "seed_results.42.log: must be a relative path inside the record"),
        ("seed_results.42.log", "/etc/passwd", "seed_results.42.log: must be a relative path inside the record"),
        ("seed_results.42.log", "logs\\a.log", "seed_results.42.log: must be a relative path inside the record"),
        ("seed_results.42.notes", "hi", "seed_results.42.notes: Extra inputs are not permitted"),
        ("val_bpb", REMOVE, "val_bpb: Field required"),
        ("val_bpb_std", "0.1", "val_bpb_std: Input should be a valid number"),
        ("author", 3, "author: Input should be a valid string"),
        ("author", "", "author: String should have at least 1 character"),
        ("hardware", "8xH100", "hardware: Extra inputs are not permitted"),
        ("date", "20 March 2026", "date: not an ISO 8601 date: '20 March 2026'"),
        ("date", 20260320, "date: Input should be a valid string"),
        ("seeds", [42, 42, 1337, 2025], "seeds: must be unique; repeated: 42"),
        ("seeds", ["42", 1337, 2025], "seeds.0: Input should be a valid integer"),
        ("seeds", [], "seeds: List should have at least 1 item"),
        ("seeds", [42, 1337], "seed_results: keys must equal seeds: results for seeds not in `seeds`: 2025"),
        ("seeds", [42, 1337, 2025, 7], "seed_results: keys must equal seeds: no result for seed 7"),
        ("seed_results", {"42": seed_result(1.5, 42), "1337": seed_result(1.5, 1337), "02025": seed_result(1.5, 2025)},
         "seed_results: key '02025' is not a seed"),
        ("seed_results", [], "seed_results: Input should be a valid dictionary"),
        ("schema", 2, "schema: unsupported version 2"),
        ("schema", True, "schema: unsupported version True"),
    ],
)
def test_each_invalid_field_is_named(tmp_path, field, value, expected):
    assert expected in error_of(tmp_path, mutate(field, value))


def test_overflowing_number_is_not_finite(tmp_path):
    # 1e999 is valid JSON text that Python reads as inf; the finite check must still refuse it.
    text = json.dumps(valid_document()).replace('"val_bpb": 1.5', '"val_bpb": 1e999')
    assert "val_bpb: Input should be a finite number" in error_of(tmp_path, text)


def test_every_problem_is_listed_on_one_line(tmp_path):
    document = mutate("seed_results.1337.val_bpb", "x")
    document["author"] = 5
    message = error_of(tmp_path, document)
    assert "author: Input should be a valid string" in message
    assert "seed_results.1337.val_bpb: Input should be a valid number" in message


def test_the_error_reads_like_the_issue_example(tmp_path):
    with pytest.raises(RecordError) as caught:
        load_submission(write(tmp_path, mutate("seed_results.1337.val_bpb", "1.2")))
    assert str(caught.value).endswith("submission.json: seed_results.1337.val_bpb: Input should be a valid number")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{\n  "schema": 1,\n  "author": "Ada",,\n}', "line 3 column 19: Expecting property name enclosed in double quotes"),
        ('{"schema": 1', "line 1 column 13: Expecting ',' delimiter"),
        ("", "line 1 column 1: Expecting value"),
        ('{"val_bpb": NaN}', "NaN is not a JSON number"),
        ('{"val_bpb": 1.5, "val_bpb": 1.0}', "val_bpb: duplicate key"),
        ("[1, 2]", "expected a JSON object, got list"),
    ],
)
def test_malformed_json_names_line_and_column(tmp_path, text, expected):
    assert error_of(tmp_path, text) == expected


def test_unreadable_files(tmp_path):
    with pytest.raises(RecordError, match="cannot read"):
        load_submission(tmp_path / "absent.json")
    (tmp_path / "submission.json").write_bytes(b'{"author": "\xff"}')
    with pytest.raises(RecordError, match="not UTF-8"):
        load_submission(tmp_path / "submission.json")
    (tmp_path / "submission.json").write_bytes(b" " * 1_000_001)
    with pytest.raises(RecordError, match="larger than 1000000 bytes"):
        load_submission(tmp_path / "submission.json")


def test_symlink_refused_when_asked(tmp_path):
    target = write(tmp_path, valid_document())
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert load_submission(link).name == "Deeper MLP"
    with pytest.raises(RecordError, match="cannot read"):
        load_submission(link, follow_symlinks=False)


# -- writer and JSON Schema -------------------------------------------------------------------------------------


def test_writer_round_trips_in_a_fixed_key_order(tmp_path):
    submission = load_submission(write(tmp_path, valid_document()))
    document = submission_to_dict(submission)
    assert list(document) == list(valid_document())
    assert list(document["seed_results"]) == ["42", "1337", "2025"]
    assert list(document["seed_results"]["42"]) == list(seed_result(1.0, 42))
    assert document == valid_document()
    again = load_submission(write(tmp_path, document))
    assert again == submission


def test_writer_refuses_a_legacy_submission():
    legacy = submission_from_dict({"val_bpb": 1.2})
    with pytest.raises(ValueError, match="unknown fields"):
        submission_to_dict(legacy)


def test_json_schema_describes_the_file():
    schema = SUBMISSION_JSON_SCHEMA
    assert schema["additionalProperties"] is False
    assert schema["properties"]["schema"]["const"] == 1
    assert set(schema["required"]) == set(valid_document())
    seed_schema = schema["$defs"]["SeedResultModel"]
    assert set(seed_schema["required"]) == set(seed_result(1.0, 1))
    assert seed_schema["properties"]["steps"]["type"] == "integer"
    json.dumps(schema)  # serializable as is


finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    seeds=st.lists(st.integers(min_value=0, max_value=2**32), min_size=1, max_size=4, unique=True),
    bpb=finite,
    loss=finite,
    std=st.none() | finite,
    steps=st.integers(min_value=0, max_value=10**9),
    size=st.integers(min_value=0, max_value=10**12),
    date=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.timezone.utc)),
    text=st.text(min_size=1, max_size=20),
)
def test_property_written_submissions_read_back_equal(seeds, bpb, loss, std, steps, size, date, text):
    results = {
        seed: SeedResult(seed, bpb, loss, steps, bpb, loss, size, size, size, f"train_seed{seed}.log", SHA)
        for seed in seeds
    }
    submission = Submission(1, text, text, text, text, date, text, bpb, loss, std, tuple(seeds), results)
    encoded = json.dumps(submission_to_dict(submission))
    assert submission_from_dict(json.loads(encoded)) == submission


# -- legacy ---------------------------------------------------------------------------------------------------

PUBLIC_STYLE = {
    "author": "Jane Golfer",
    "github_id": "janegolfer",
    "name": "Int6 QAT + sliding window",
    "blurb": "11 layers, int6 quantization-aware training, sliding-window eval at stride 64",
    "date": "2026-03-20T00:00:00Z",
    "val_loss": 1.9,
    "val_bpb": 1.12,
    "bytes_total": 15863489,
    "bytes_code": 48213,
    "seed_results": {"42": {"val_bpb": 1.121}, "1337": {"val_bpb": 1.119, "val_loss": 1.89}},
}


def test_public_competition_file_reads_as_legacy_with_unknowns_listed(tmp_path):
    submission = load_submission(write(tmp_path, PUBLIC_STYLE))
    assert submission.legacy is True and submission.schema is None
    assert (submission.author, submission.github_id) == ("Jane Golfer", "janegolfer")
    assert submission.date == dt.datetime(2026, 3, 20, tzinfo=dt.timezone.utc)
    assert (submission.val_bpb, submission.val_loss) == (1.12, 1.9)
    assert submission.seeds == (42, 1337)  # inferred from seed_results, in file order
    first, second = submission.seed_results[42], submission.seed_results[1337]
    assert (first.val_bpb, first.val_loss) == (1.121, None)
    assert (second.val_bpb, second.val_loss) == (1.119, 1.89)
    # Top-level sizes hold for every seed; nothing else is filled in.
    assert first.bytes_total == second.bytes_total == 15863489
    assert first.code_bytes == second.code_bytes == 48213
    assert first.artifact_bytes is None and first.steps is None and first.train_time_s is None
    unknown = set(submission.unknown_fields)
    assert {"track", "val_bpb_std"} <= unknown
    assert {"seed_results.42.val_loss", "seed_results.42.steps", "seed_results.42.artifact_bytes"} <= unknown
    assert "seed_results.1337.val_loss" not in unknown and "seed_results.42.val_bpb" not in unknown
    assert "seeds" not in unknown and "val_bpb" not in unknown


def test_legacy_never_fills_a_silent_zero(tmp_path):
    submission = load_submission(write(tmp_path, PUBLIC_STYLE))
    top_level = [submission.val_bpb, submission.val_loss, submission.val_bpb_std]
    per_seed = [getattr(r, f) for r in submission.seed_results.values() for f in SeedResult.__dataclass_fields__]
    assert 0 not in top_level + per_seed and 0.0 not in top_level + per_seed
    # Every None is accounted for in unknown_fields.
    nones = {f"seed_results.{r.seed}.{f}" for r in submission.seed_results.values()
             for f in SeedResult.__dataclass_fields__ if getattr(r, f) is None}
    assert nones <= set(submission.unknown_fields)


def test_baseline_style_file_without_seeds(tmp_path):
    document = {k: v for k, v in PUBLIC_STYLE.items() if k != "seed_results"}
    submission = load_submission(write(tmp_path, document))
    assert submission.seeds == () and dict(submission.seed_results) == {}
    assert {"seeds", "seed_results"} <= set(submission.unknown_fields)


def test_legacy_aliases_and_units(tmp_path):
    document = copy.deepcopy(PUBLIC_STYLE)
    document["seeds"] = [1337, 42]
    document["val_bpb_std"] = 0.0014
    document["track"] = "10min_16mb"
    document["seed_results"]["42"].update(step_stop=13780, wallclock_seconds=600.0, eval_time_ms=73455, bytes_model=15815276)
    submission = load_submission(write(tmp_path, document))
    assert submission.seeds == (1337, 42) and submission.val_bpb_std == 0.0014 and submission.track == "10min_16mb"
    result = submission.seed_results[42]
    assert (result.steps, result.train_time_s, result.eval_time_s) == (13780, 600.0, 73.455)
    assert result.artifact_bytes == 15815276
    assert "seed_results.42.steps" not in submission.unknown_fields


def test_legacy_seed_results_as_a_list_or_bare_numbers(tmp_path):
    document = {"val_bpb": 1.2, "seed_results": [{"seed": 1, "val_bpb": 1.21}, {"seed": 2, "val_bpb": 1.19}]}
    assert load_submission(write(tmp_path, document)).seed_results[2].val_bpb == 1.19
    document = {"val_bpb": 1.2, "seed_results": {"1": 1.21, "2": 1.19}}
    assert load_submission(write(tmp_path, document)).seed_results[1].val_bpb == 1.21


def test_legacy_unreadable_date_is_unknown_not_an_error(tmp_path):
    submission = load_submission(write(tmp_path, {**PUBLIC_STYLE, "date": "March 20th"}))
    assert submission.date is None and "date" in submission.unknown_fields


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"val_bpb": "about 1.1"}, "val_bpb: expected a number, got 'about 1.1'"),
        ({"val_bpb": True}, "val_bpb: expected a number, got bool"),
        ({"author": ["a"]}, "author: expected a string, got list"),
        ({"seed_results": {"42": {"val_bpb": "x"}}}, "seed_results.42.val_bpb: expected a number"),
        ({"seed_results": {"forty-two": {}}}, "seed_results.forty-two: key is not a seed"),
        ({"seed_results": {"42": {"step_stop": 10.5}}}, "seed_results.42.step_stop: expected a whole number"),
        ({"seeds": [1, 2]}, "seed_results: keys [42, 1337] do not match seeds [1, 2]"),
        ({"seeds": "42"}, "seeds: expected a list of integers"),
        ({"seed_results": {"42": {"log": "../x.log"}}}, "seed_results.42.log: must be a relative path inside"),
        ({"seed_results": "none"}, "seed_results: expected an object keyed by seed"),
    ],
)
def test_legacy_wrong_values_are_errors_naming_the_field(tmp_path, change, expected):
    message = error_of(tmp_path, {**PUBLIC_STYLE, **change})
    assert expected in message and "legacy" in message

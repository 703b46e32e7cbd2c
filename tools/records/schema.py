"""`submission.json`: the versioned schema (`"schema": 1`), its reader, its writer and its JSON Schema.

Schema 1 is read strictly with pydantic: exact types (no "1.2" for a number, no true for an integer), no extra
fields, finite numbers, unique seeds, and `seed_results` keyed by exactly those seeds. Every problem is reported
with the field's path, e.g. `submission.json: seed_results.1337.val_bpb: Input should be a valid number`.
A file without a `schema` field is a public-competition file and goes to the tolerant legacy reader.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from tools.records.fields import MAX_SEEDS, check_relative_name, format_date, parse_date  # noqa: F401  (re-exported)
from tools.records.legacy import legacy_submission
from tools.records.model import RecordError, SeedResult, Submission
from tools.records.paths import read_regular_file

SCHEMA_VERSION = 1
MAX_SUBMISSION_BYTES = 1_000_000  # a real submission.json is a few kB
MAX_JSON_DEPTH = 32  # real files nest 3 or 4 deep; json.loads recurses per level and would overflow the stack
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

_CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]*)$")
_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Text = Annotated[str, StringConstraints(min_length=1)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class SeedResultModel(BaseModel):
    """One seed's run, as claimed; the judge compares each number with the seed's log."""

    model_config = _STRICT

    val_bpb: NonNegativeFloat
    val_loss: NonNegativeFloat
    steps: NonNegativeInt
    train_time_s: NonNegativeFloat
    eval_time_s: NonNegativeFloat
    artifact_bytes: NonNegativeInt = Field(description="compressed model bytes")
    code_bytes: NonNegativeInt = Field(description="bytes of train_gpt.py")
    bytes_total: NonNegativeInt = Field(description="artifact_bytes + code_bytes")
    log: Text = Field(description="the seed's log file name inside the record folder")
    code_sha256: Sha256 = Field(description="sha256 of the code embedded in the log (lowercase hex)")

    @field_validator("log")
    @classmethod
    def _inside_the_record(cls, name: str) -> str:
        check_relative_name(name)
        return name


class SubmissionModel(BaseModel):
    """submission.json, schema 1."""

    model_config = ConfigDict(**_STRICT, title="submission.json (schema 1)")

    schema_: Literal[1] = Field(alias="schema", description="the schema version")
    author: Text
    github_id: Text
    name: Text
    blurb: str
    date: str = Field(description="ISO 8601 date or date-time, e.g. 2026-03-20 or 2026-03-20T00:00:00Z")
    track: Text = Field(description="a track id from records/tracks.toml")
    val_bpb: NonNegativeFloat = Field(description="mean of the seeds' val_bpb")
    val_loss: NonNegativeFloat = Field(description="mean of the seeds' val_loss")
    val_bpb_std: NonNegativeFloat | None = Field(description="sample standard deviation of val_bpb; null for one seed")
    seeds: list[int] = Field(min_length=1)
    seed_results: dict[str, SeedResultModel] = Field(description="keyed by seed, as a decimal string")

    @field_validator("date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        parse_date(value)
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(seeds) > MAX_SEEDS:
            raise ValueError(f"more than {MAX_SEEDS} seeds ({len(seeds)}); not a record")
        repeated = sorted(seed for seed, count in Counter(seeds).items() if count > 1)
        if repeated:
            raise ValueError(f"must be unique; repeated: {', '.join(map(str, repeated))}")
        return seeds

    @model_validator(mode="after")
    def _results_match_seeds(self) -> SubmissionModel:
        bad_keys = [key for key in self.seed_results if not _CANONICAL_INT.match(key)]
        if bad_keys:
            raise ValueError(f"seed_results: key {bad_keys[0]!r} is not a seed (a decimal integer)")
        keys = {int(key) for key in self.seed_results}
        if keys != set(self.seeds):
            lacking = sorted(set(self.seeds) - keys)
            extra = sorted(keys - set(self.seeds))
            parts = [f"no result for seed {', '.join(map(str, lacking))}" if lacking else "",
                     f"results for seeds not in `seeds`: {', '.join(map(str, extra))}" if extra else ""]
            raise ValueError("seed_results: keys must equal seeds: " + "; ".join(p for p in parts if p))
        return self


SUBMISSION_JSON_SCHEMA: dict[str, Any] = SubmissionModel.model_json_schema(by_alias=True)


# -- reading ---------------------------------------------------------------------------------------------------


def read_json_object(path: str | Path, *, follow_symlinks: bool = True) -> dict[str, Any]:
    """Read a JSON object from a file (size-capped, duplicate keys refused); RecordError naming line and column."""
    try:
        data, truncated = read_regular_file(path, MAX_SUBMISSION_BYTES, follow_symlinks=follow_symlinks)
    except (OSError, ValueError) as problem:
        raise RecordError(path, f"cannot read: {getattr(problem, 'strerror', None) or problem}") from None
    if truncated:
        raise RecordError(path, f"larger than {MAX_SUBMISSION_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise RecordError(path, f"not UTF-8 (invalid byte at offset {problem.start})") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise RecordError(path, f"JSON nested deeper than {MAX_JSON_DEPTH} levels ({depth}); not a submission")
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
    except json.JSONDecodeError as problem:
        raise RecordError(path, f"line {problem.lineno} column {problem.colno}: {problem.msg}") from None
    except ValueError as problem:  # from the hooks
        raise RecordError(path, str(problem)) from None
    if not isinstance(document, dict):
        raise RecordError(path, f"expected a JSON object, got {type(document).__name__}")
    return document


def json_depth(text: str) -> int:
    """The deepest bracket nesting of a JSON text, in one linear pass (strings removed first)."""
    brackets = _JSON_STRING.sub("", text).translate({ord(c): None for c in set(text) - set("[]{}")})
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; a reviewer reading the first would be misled.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"{key}: duplicate key")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_submission(path: str | Path, *, follow_symlinks: bool = True) -> Submission:
    """Read submission.json: schema 1 strictly, or (no `schema` field) the public competition's looser style.

    Raises RecordError("<path>", "<field.path>: <what>; ...") listing every problem on one line.
    """
    document = read_json_object(path, follow_symlinks=follow_symlinks)
    return submission_from_dict(document, path)


def submission_from_dict(document: Mapping[str, Any], where: str | Path = "submission.json") -> Submission:
    """Validate an already-parsed submission.json object (see load_submission)."""
    if "schema" not in document:
        return legacy_submission(document, where)
    version = document["schema"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise RecordError(where, f"schema: unsupported version {version!r} (this reader knows {SCHEMA_VERSION})")
    try:
        model = SubmissionModel.model_validate(dict(document))
    except ValidationError as problem:
        raise RecordError(where, describe_errors(problem)) from None
    return _to_submission(model)


def describe_errors(problem: ValidationError) -> str:
    """pydantic's errors as one line: `field.path: message; field.path: message`."""
    parts = []
    for error in problem.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def _to_submission(model: SubmissionModel) -> Submission:
    results = {
        int(key): SeedResult(seed=int(key), **result.model_dump())
        for key, result in model.seed_results.items()
    }
    return Submission(
        schema=model.schema_,
        author=model.author,
        github_id=model.github_id,
        name=model.name,
        blurb=model.blurb,
        date=parse_date(model.date),
        track=model.track,
        val_bpb=model.val_bpb,
        val_loss=model.val_loss,
        val_bpb_std=model.val_bpb_std,
        seeds=tuple(model.seeds),
        seed_results={seed: results[seed] for seed in model.seeds},
    )


# -- writing ---------------------------------------------------------------------------------------------------

_SEED_FIELDS = tuple(SeedResultModel.model_fields)


def submission_to_dict(submission: Submission) -> dict[str, Any]:
    """The schema-1 JSON object for a Submission, keys in a fixed order (so written files diff cleanly).

    Seeds keep their order in `seeds`. Writers should dump it with `json.dumps(..., indent=2)`; floats are written
    with repr, so they read back exactly. Raises ValueError for a Submission schema 1 cannot hold (unknown fields
    of a legacy file, non-finite numbers) rather than writing a file the reader would reject.
    """
    if submission.unknown_fields:
        raise ValueError(f"cannot write a submission with unknown fields: {', '.join(submission.unknown_fields)}")
    document: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "author": submission.author,
        "github_id": submission.github_id,
        "name": submission.name,
        "blurb": submission.blurb,
        "date": format_date(submission.date) if submission.date is not None else None,
        "track": submission.track,
        "val_bpb": submission.val_bpb,
        "val_loss": submission.val_loss,
        "val_bpb_std": submission.val_bpb_std,
        "seeds": list(submission.seeds),
        "seed_results": {
            str(seed): {name: getattr(submission.seed_results[seed], name) for name in _SEED_FIELDS}
            for seed in submission.seeds
        },
    }
    for key in ("val_bpb", "val_loss", "val_bpb_std"):
        value = document[key]
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key}: not a finite number: {value}")
    return document

"""The track table (`records/tracks.toml`): loaded once, validated by pydantic models, returned as `Track`s.

A mistake in the table would silently change how every record is judged, so anything unexpected is an error
that names the track and the key: unknown keys, missing keys, wrong types (strict: no "1" for 1, no true for 1),
non-positive caps, non-finite numbers. `TrackSpec` is the table's schema, field by field.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser under its old name
    import tomli as tomllib  # type: ignore[no-redef]

from tools.records import paths
from tools.records.model import RecordError, Significance, Track

# Track ids become folder names under records/.
_TRACK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# How the artifact cap counts a record's files (tools.verify.checks.budgets.counted_files says exactly which).
ARTIFACT_COUNTS = ("every_shipped_file", "code_and_model")
# Who scores a record's model: its own script's entry points, which the judge runs (probes, rescore, tokenizer audit,
# reproduction: contract §4), or the run service, which scored an exported model itself (docs/SERVICE.md).
SCORERS = ("record", "service")


class _Invalid(Exception):
    """A value of the wrong shape; the message names `tracks.<id>.<key>`."""


_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
Text = Annotated[str, AfterValidator(lambda value: _non_empty(value))]
PositiveInt = Annotated[int, Field(ge=1)]
PositiveNumber = Annotated[float, Field(gt=0)]
NonNegativeNumber = Annotated[float, Field(ge=0)]


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _strictly_between_0_and_1(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


class SignificanceSpec(BaseModel):
    model_config = _STRICT
    metric: Literal["val_bpb", "val_loss"]
    test: Literal["one_sided_t"]
    alpha: Annotated[float, AfterValidator(_strictly_between_0_and_1)]
    min_improvement: NonNegativeNumber
    enforce: bool = True


class TrackSpec(BaseModel):
    """One `[tracks.<id>]` table. Caps are positive: a zero or negative cap would reject or pass everything."""

    model_config = _STRICT
    title: Text
    hardware: Text
    nproc: PositiveInt
    train_time_cap_s: PositiveNumber | None = None
    eval_time_cap_s: PositiveNumber | None = None
    artifact_cap_bytes: PositiveInt
    code_line_cap: PositiveInt | None = None  # absent: no cap on a record's code (the public ruleset)
    dataset: Text
    tokenizer: Text
    min_seeds: PositiveInt
    ranked: bool
    reproducible_in_ci: bool
    reproduce_tolerance_bpb: NonNegativeNumber
    significance: SignificanceSpec
    env: dict[str, str] = {}
    aliases: list[Text] = []
    dataset_variants: list[Text] = []
    train_time_grace_s: NonNegativeNumber = 0.0
    artifact_counts: Literal[ARTIFACT_COUNTS] = ARTIFACT_COUNTS[0]  # type: ignore[valid-type]
    compressed_code: bool = False
    entry_scripts: list[Text] = ["train_gpt.py"]
    claim_min_decimals: Annotated[int, Field(ge=0)] = 4
    scored_by: Literal[SCORERS] = SCORERS[0]  # type: ignore[valid-type]


class RulesetSpec(BaseModel):
    model_config = _STRICT
    name: Text | None = None
    description: Text | None = None
    source: Text | None = None


def _type_name(value: Any) -> str:
    return {dict: "a table", list: "an array", bool: "a boolean", str: "a string", int: "an integer",
            float: "a float"}.get(type(value), type(value).__name__)


def _phrase(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    """pydantic's error, in the table's words (the key path is added by the caller)."""
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    expected = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
                "string_type": "a string", "dict_type": "a table", "model_type": "a table",
                "tuple_type": "an array", "list_type": "an array"}
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return f"unknown key (allowed: {', '.join(model.model_fields)})"
    if kind in expected:
        return f"expected {expected[kind]}, got {_type_name(value)}"
    if kind == "greater_than_equal":
        return f"must be >= {context['ge']}, got {value}"
    if kind == "greater_than":
        return f"must be > {context['gt']}, got {value}"
    if kind == "finite_number":
        return f"must be finite, got {value}"
    if kind == "literal_error":
        return f"must be one of {context.get('expected', '').replace(chr(39), '')}, got {value!r}"
    return str(error.get("msg", kind)).removeprefix("Value error, ")


def _validated(model: type[BaseModel], table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise _Invalid(f"{where}: expected a table, got {_type_name(table)}")
    try:
        return model.model_validate(table)
    except ValidationError as problem:
        # Unknown keys first, then missing ones, then values: a misspelt key is reported as itself.
        rank = {"extra_forbidden": 0, "missing": 1}
        error = sorted(problem.errors(), key=lambda e: rank.get(e["type"], 2))[0]
        nested = {"significance": SignificanceSpec}
        owner = nested.get(str(error["loc"][0]), model) if len(error["loc"]) > 1 else model
        path = ".".join(str(part) for part in (where, *error["loc"]))
        raise _Invalid(f"{path}: {_phrase(error, owner)}") from None


def parse_tracks(document: Mapping[str, Any], default_name: str = "tracks") -> dict[str, Track]:
    """Validate an already-parsed TOML document; raises `_Invalid` naming `tracks.<id>.<key>`.

    An optional `[ruleset]` table names the rules (`name`, `description`, `source`); the default name is the file's.
    """
    unknown = sorted(set(document) - {"tracks", "ruleset"})
    if unknown:
        raise _Invalid(f"{unknown[0]}: unknown top-level key (only [ruleset] and [tracks.<id>] tables are allowed)")
    ruleset_name = _validated(RulesetSpec, document.get("ruleset", {}), "ruleset").name or default_name
    tables = document.get("tracks")
    if not isinstance(tables, dict) or not tables:
        raise _Invalid("tracks: no [tracks.<id>] tables")
    result: dict[str, Track] = {}
    for track_id, table in tables.items():
        where = f"tracks.{track_id}"
        if not _TRACK_ID.match(track_id):
            raise _Invalid(f"{where}: track id must be a folder name (letters, digits, '_', '-', '.')")
        spec: TrackSpec = _validated(TrackSpec, table, where)
        values = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in spec.model_dump(exclude={"significance", "env"}).items()}
        result[track_id] = Track(
            id=track_id, **values,
            significance=Significance(**spec.significance.model_dump()),
            env=types.MappingProxyType(dict(spec.env)),  # read-only: tracks are shared
            ruleset=ruleset_name,
        )
    _refuse_shared_names(result)
    return result


def _refuse_shared_names(tracks: Mapping[str, Track]) -> None:
    """A name (id or alias) must mean one track, or a submission's `track` would be ambiguous."""
    owner: dict[str, str] = {}
    for track in tracks.values():
        for name in (track.id, *(alias for alias in track.aliases if "*" not in alias)):
            if owner.setdefault(name, track.id) != track.id:
                raise _Invalid(f"tracks.{track.id}.aliases: {name!r} already names track {owner[name]}")


_TOML_LINE = re.compile(r"at line (\d+)")
_cache: dict[tuple[str, int, int], dict[str, Track]] = {}


def load_tracks(path: str | Path | None = None) -> dict[str, Track]:
    """Read and validate the track table (default: `paths.tracks_path()`), keyed by track id.

    Raises RecordError("<path>[:line]", "tracks.<id>.<key>: <what>") on anything unexpected. The parsed table is
    cached per file version, so callers may load it freely.
    """
    path = Path(path) if path is not None else paths.tracks_path()
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key in _cache:
            return dict(_cache[key])
        raw = path.read_bytes()
    except OSError as problem:
        raise RecordError(path, f"cannot read the track table: {problem.strerror or problem}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as problem:
        raise RecordError(path, f"not UTF-8 (byte {problem.start})") from None
    except tomllib.TOMLDecodeError as problem:
        line = _TOML_LINE.search(str(problem))
        raise RecordError(f"{path}:{line.group(1)}" if line else path, f"invalid TOML: {problem}") from None
    try:
        tracks = parse_tracks(document, default_name="tracks" if path.name == "tracks.toml" else path.stem)
    except _Invalid as problem:
        raise RecordError(path, str(problem)) from None
    _cache[key] = tracks
    return dict(tracks)

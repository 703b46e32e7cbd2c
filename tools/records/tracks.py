"""The track table (`records/tracks.toml`): loaded once, validated field by field, returned as `Track`s.

A mistake in the table would silently change how every record is judged, so anything unexpected is an error
that names the track and the key: unknown keys, missing keys, wrong types, non-positive caps.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser under its old name
    import tomli as tomllib  # type: ignore[no-redef]

from tools.records import paths
from tools.records.model import RecordError, Significance, Track

# Track ids become folder names under records/.
_TRACK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SIGNIFICANCE_METRICS = ("val_bpb", "val_loss")
SIGNIFICANCE_TESTS = ("one_sided_t",)
# How the artifact cap counts a record's files (tools.verify.checks.budgets.counted_files says exactly which).
ARTIFACT_COUNTS = ("every_shipped_file", "code_and_model")


class _Invalid(Exception):
    """A value of the wrong shape; the caller adds the track and key."""


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_type_name(value)}")
    if not value.strip():
        raise _Invalid("must not be empty")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_type_name(value)}")
    return value


def _integer(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        # bool is an int subclass in Python; `nproc = true` is a typo, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {_type_name(value)}")
        if value < minimum:
            raise _Invalid(f"must be >= {minimum}, got {value}")
        return value

    return check


def _number(*, positive: bool = False, below_one: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(f"expected a number, got {_type_name(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise _Invalid(f"must be finite, got {value}")
        if positive and number <= 0:
            raise _Invalid(f"must be > 0, got {value}")
        if number < 0:
            raise _Invalid(f"must be >= 0, got {value}")
        if below_one and not 0 < number < 1:
            raise _Invalid(f"must be between 0 and 1 (exclusive), got {value}")
        return number

    return check


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _string(value)
        if text not in options:
            raise _Invalid(f"must be one of {', '.join(options)}, got {text!r}")
        return text

    return check


def _string_table(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f"expected a table of strings, got {_type_name(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise _Invalid(f"{key}: expected a string, got {_type_name(item)}")
    return dict(value)


def _string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"expected an array of strings, got {_type_name(value)}")
    return tuple(_string(item) for item in value)


def _type_name(value: Any) -> str:
    return {dict: "a table", list: "an array", bool: "a boolean", str: "a string", int: "an integer",
            float: "a float"}.get(type(value), type(value).__name__)


# key -> (validator, required). Caps are positive: a zero or negative cap would reject or pass everything.
_TRACK_KEYS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "title": (_string, True),
    "hardware": (_string, True),
    "nproc": (_integer(1), True),
    "train_time_cap_s": (_number(positive=True), False),
    "eval_time_cap_s": (_number(positive=True), False),
    "artifact_cap_bytes": (_integer(1), True),
    "code_line_cap": (_integer(1), False),  # absent: no cap on a record's code (the public ruleset)
    "dataset": (_string, True),
    "tokenizer": (_string, True),
    "min_seeds": (_integer(1), True),
    "ranked": (_boolean, True),
    "reproducible_in_ci": (_boolean, True),
    "reproduce_tolerance_bpb": (_number(), True),
    "significance": (None, True),  # a sub-table, checked by _significance
    "env": (_string_table, False),
    "aliases": (_string_list, False),
    "dataset_variants": (_string_list, False),
    "train_time_grace_s": (_number(), False),
    "artifact_counts": (_choice(ARTIFACT_COUNTS), False),
    "compressed_code": (_boolean, False),
    "entry_scripts": (_string_list, False),
    "claim_min_decimals": (_integer(0), False),
}
_SIGNIFICANCE_KEYS: dict[str, Callable[[Any], Any]] = {
    "metric": _choice(SIGNIFICANCE_METRICS),
    "test": _choice(SIGNIFICANCE_TESTS),
    "alpha": _number(positive=True, below_one=True),
    "min_improvement": _number(),
    "enforce": _boolean,
}


def _fields(table: Mapping[str, Any], keys: Mapping[str, Any], required: set[str], where: str) -> dict[str, Any]:
    """Check a table's keys against `keys` (unknown and missing keys both fail) and validate each value."""
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise _Invalid(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(keys)})")
    missing = [key for key in keys if key in required and key not in table]
    if missing:
        raise _Invalid(f"{where}.{missing[0]}: missing required key")
    values: dict[str, Any] = {}
    for key, value in table.items():
        validator = keys[key]
        if validator is None:
            continue
        try:
            values[key] = validator(value)
        except _Invalid as problem:
            raise _Invalid(f"{where}.{key}: {problem}") from None
    return values


def _significance(value: Any, where: str) -> Significance:
    if not isinstance(value, dict):
        raise _Invalid(f"{where}: expected a table, got {_type_name(value)}")
    required = set(_SIGNIFICANCE_KEYS) - {"enforce"}
    return Significance(**_fields(value, _SIGNIFICANCE_KEYS, required, where))


_RULESET_KEYS: dict[str, Callable[[Any], Any]] = {"name": _string, "description": _string, "source": _string}


def parse_tracks(document: Mapping[str, Any], default_name: str = "tracks") -> dict[str, Track]:
    """Validate an already-parsed TOML document; raises `_Invalid` naming `tracks.<id>.<key>`.

    An optional `[ruleset]` table names the rules (`name`, `description`, `source`); the default name is the file's.
    """
    unknown = sorted(set(document) - {"tracks", "ruleset"})
    if unknown:
        raise _Invalid(f"{unknown[0]}: unknown top-level key (only [ruleset] and [tracks.<id>] tables are allowed)")
    header = document.get("ruleset", {})
    if not isinstance(header, dict):
        raise _Invalid(f"ruleset: expected a table, got {_type_name(header)}")
    ruleset_name = _fields(header, _RULESET_KEYS, set(), "ruleset").get("name", default_name)
    tables = document.get("tracks")
    if not isinstance(tables, dict) or not tables:
        raise _Invalid("tracks: no [tracks.<id>] tables")
    result: dict[str, Track] = {}
    for track_id, table in tables.items():
        where = f"tracks.{track_id}"
        if not _TRACK_ID.match(track_id):
            raise _Invalid(f"{where}: track id must be a folder name (letters, digits, '_', '-', '.')")
        if not isinstance(table, dict):
            raise _Invalid(f"{where}: expected a table, got {_type_name(table)}")
        required = {key for key, (_, needed) in _TRACK_KEYS.items() if needed}
        values = _fields(table, {key: check for key, (check, _) in _TRACK_KEYS.items()}, required, where)
        result[track_id] = Track(
            id=track_id,
            title=values["title"],
            hardware=values["hardware"],
            nproc=values["nproc"],
            train_time_cap_s=values.get("train_time_cap_s"),
            eval_time_cap_s=values.get("eval_time_cap_s"),
            artifact_cap_bytes=values["artifact_cap_bytes"],
            code_line_cap=values.get("code_line_cap"),
            dataset=values["dataset"],
            tokenizer=values["tokenizer"],
            min_seeds=values["min_seeds"],
            ranked=values["ranked"],
            reproducible_in_ci=values["reproducible_in_ci"],
            reproduce_tolerance_bpb=values["reproduce_tolerance_bpb"],
            significance=_significance(table["significance"], f"{where}.significance"),
            env=types.MappingProxyType(values.get("env", {})),  # read-only: tracks are shared
            aliases=values.get("aliases", ()),
            dataset_variants=values.get("dataset_variants", ()),
            train_time_grace_s=values.get("train_time_grace_s", 0.0),
            artifact_counts=values.get("artifact_counts", ARTIFACT_COUNTS[0]),
            compressed_code=values.get("compressed_code", False),
            entry_scripts=values.get("entry_scripts", ("train_gpt.py",)),
            claim_min_decimals=values.get("claim_min_decimals", 4),
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

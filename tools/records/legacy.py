"""submission.json files in the public competition's looser style (no `schema` field).

Those files carry a subset of our fields under a few other names (`bytes_code`, `step_stop`,
`wallclock_seconds`), often a top-level `bytes_total` for the whole submission, `seed_results` with partial
entries, and sometimes no `seeds` (then the keys of `seed_results` are the seeds). Reading one yields the same
`Submission` with `legacy=True`: whatever the file does not say is None and named in `unknown_fields`
(`val_bpb_std`, `seed_results.42.steps`, ...) — never a silent zero, never a computed stand-in.
A value that is present but of the wrong kind (a string where a number belongs) is still an error: it is not
unknown, it is wrong. Fields we have no use for (`hardware`, `technique_summary`, ...) are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tools.records.fields import MAX_SEEDS, check_relative_name, parse_date
from tools.records.model import RecordError, SeedResult, Submission

_SEED_KEY = re.compile(r"^-?\d+$")

# SeedResult field -> the names public files used for it, with a scale (ms -> s).
_SEED_ALIASES: dict[str, tuple[tuple[str, float], ...]] = {
    "val_bpb": (("val_bpb", 1),),
    "val_loss": (("val_loss", 1),),
    "steps": (("steps", 1), ("step_stop", 1), ("step", 1)),
    "train_time_s": (("train_time_s", 1), ("train_time_seconds", 1), ("wallclock_seconds", 1),
                     ("train_time_ms", 1e-3)),
    "eval_time_s": (("eval_time_s", 1), ("eval_time_seconds", 1), ("eval_time_ms", 1e-3)),
    "artifact_bytes": (("artifact_bytes", 1), ("bytes_model", 1), ("model_bytes", 1)),
    "code_bytes": (("code_bytes", 1), ("bytes_code", 1)),
    "bytes_total": (("bytes_total", 1), ("total_bytes", 1)),
    "log": (("log", 1), ("log_file", 1)),
    "code_sha256": (("code_sha256", 1),),
}  # fmt: skip
_INTEGER_FIELDS = {"steps", "artifact_bytes", "code_bytes", "bytes_total"}
_TEXT_FIELDS = {"log", "code_sha256"}
# Sizes a public file gave once for the whole submission; they hold for every seed that does not say otherwise.
_SHARED_SIZES = ("bytes_total", "code_bytes", "artifact_bytes")
_TOP_TEXT = ("author", "github_id", "name", "blurb", "track")
_TOP_NUMBERS = ("val_bpb", "val_loss", "val_bpb_std")


def legacy_submission(document: Mapping[str, Any], where: str | Path = "submission.json") -> Submission:
    """Read a schema-less submission.json object; RecordError (naming the field) for a wrongly typed value."""
    unknown: list[str] = []

    def top(field: str, convert: Callable[[Any, str], Any]) -> Any:
        if document.get(field) is None:
            unknown.append(field)
            return None
        return convert(document[field], field)

    try:
        text = {field: top(field, _text) for field in _TOP_TEXT}
        date = top("date", _date)
        if date is None and "date" not in unknown:
            unknown.append("date")
        numbers = {field: top(field, _number) for field in _TOP_NUMBERS}
        raw_results = _raw_seed_results(document.get("seed_results"))
        if raw_results is None and isinstance(document.get("seeds"), dict):
            # `"seeds": {"0": {...}, "42": {...}}`: the per-seed results under the seeds' own key.
            raw_results = _raw_seed_results(document["seeds"])
            document = {key: value for key, value in document.items() if key != "seeds"}
        seeds = _seeds(document, raw_results)
        if not seeds:
            unknown.append("seeds")
        if raw_results is None:
            unknown.append("seed_results")
        shared = {field: _first(document, _SEED_ALIASES[field], field) for field in _SHARED_SIZES}
        results = {}
        shared_fields: set[str] = set()
        for seed in seeds:
            result, missing, inherited = _seed_result(seed, (raw_results or {}).get(seed), shared)
            results[seed] = result
            shared_fields.update(inherited)
            unknown.extend(f"seed_results.{seed}.{field}" for field in missing)
    except _Wrong as problem:
        raise RecordError(where, f"{problem} (legacy submission.json: no `schema` field)") from None
    return Submission(
        schema=None,
        date=date,
        seeds=seeds,
        seed_results=results,
        legacy=True,
        unknown_fields=tuple(unknown),
        shared_fields=tuple(sorted(shared_fields)),
        **text,
        **numbers,
    )


class _Wrong(Exception):
    pass


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _Wrong(f"{field}: expected a string, got {type(value).__name__}")
    return value


def _log_name(value: Any, field: str) -> str:
    try:
        check_relative_name(_text(value, field))
    except ValueError as problem:
        raise _Wrong(f"{field}: {problem}") from None
    return value


def _date(value: Any, field: str) -> Any:
    try:
        return parse_date(value)
    except ValueError:
        return None  # an unreadable date is unknown (listed by the caller), not an error: it decides nothing


def _number(value: Any, field: str) -> float:
    # Public files sometimes quoted numbers; a numeric string is still that number.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _Wrong(f"{field}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Wrong(f"{field}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise _Wrong(f"{field}: not a finite number: {value}")
    return float(value)


def _integer(value: Any, field: str) -> int:
    number = _number(value, field)
    if not number.is_integer():
        raise _Wrong(f"{field}: expected a whole number, got {value!r}")
    return int(number)


def _first(entry: Mapping[str, Any], aliases: tuple[tuple[str, float], ...], field: str, prefix: str = "") -> Any:
    """The value of the first alias present (scaled to our unit), or None."""
    for name, scale in aliases:
        value = entry.get(name)
        if value is None:
            continue
        where = f"{prefix}{name}"
        if field == "log":
            return _log_name(value, where)
        if field in _TEXT_FIELDS:
            return _text(value, where)
        if field in _INTEGER_FIELDS:
            return _integer(value, where)
        return _number(value, where) * scale if scale != 1 else _number(value, where)
    return None


def _raw_seed_results(value: Any) -> dict[int, Any] | None:
    """seed_results as {seed: entry}; public files used an object keyed by seed or a list of {"seed": ...}."""
    if value is None:
        return None
    if isinstance(value, dict):
        results = {}
        for key, entry in value.items():
            if not _SEED_KEY.match(str(key)):
                raise _Wrong(f"seed_results.{key}: key is not a seed (a decimal integer)")
            results[int(key)] = entry
        return results
    if isinstance(value, list):
        results = {}
        for index, entry in enumerate(value):
            if not isinstance(entry, dict) or "seed" not in entry:
                raise _Wrong(f"seed_results.{index}: expected an object with a seed")
            seed = _integer(entry["seed"], f"seed_results.{index}.seed")
            if seed in results:
                raise _Wrong(f"seed_results.{index}: seed {seed} repeated")
            results[seed] = entry
        return results
    raise _Wrong(f"seed_results: expected an object keyed by seed, got {type(value).__name__}")


def _seeds(document: Mapping[str, Any], raw_results: dict[int, Any] | None) -> tuple[int, ...]:
    listed = document.get("seeds")
    for name, many in (("seeds", listed), ("seed_results", raw_results)):
        if isinstance(many, (list, dict)) and len(many) > MAX_SEEDS:
            raise _Wrong(f"{name}: more than {MAX_SEEDS} seeds ({len(many)}); not a record")
    if listed is None and document.get("seed") is not None:
        listed = [document["seed"]]
    if listed is None:
        return tuple(raw_results or ())  # inferred from seed_results, in file order
    if not isinstance(listed, list):
        raise _Wrong(f"seeds: expected a list of integers, got {type(listed).__name__}")
    seeds = tuple(_integer(seed, f"seeds.{index}") for index, seed in enumerate(listed))
    if len(set(seeds)) != len(seeds):
        raise _Wrong("seeds: must be unique")
    if raw_results is not None and set(raw_results) != set(seeds):
        raise _Wrong(
            f"seed_results: keys {sorted(raw_results)} do not match seeds {sorted(seeds)}"
        )
    return seeds


def _seed_result(seed: int, entry: Any, shared: Mapping[str, Any]) -> tuple[SeedResult, list[str], list[str]]:
    """(the seed's result, fields unknown for it, fields it took from the file's top level)."""
    prefix = f"seed_results.{seed}."
    if entry is None:
        entry = {}
    elif not isinstance(entry, dict):
        entry = {"val_bpb": entry}  # {"42": 1.121}: a bare number is the seed's score
    values = {field: _first(entry, aliases, field, prefix) for field, aliases in _SEED_ALIASES.items()}
    inherited = []
    for field, value in shared.items():
        if values[field] is None and value is not None:
            values[field] = value
            inherited.append(field)
    missing = [field for field, value in values.items() if value is None]
    return SeedResult(seed=seed, **values), missing, inherited

"""Field rules shared by both submission.json readers (schema 1 in tools.records.schema, the public files' in
tools.records.legacy): dates, file names inside a record, the seed count limit."""

from __future__ import annotations

import datetime as dt

MAX_SEEDS = 1_000  # a real record has a handful of seeds


def check_relative_name(name: str) -> None:
    """A file named by submission.json must stay inside the record: relative, no '..', no backslashes."""
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in parts) or "\x00" in name:
        raise ValueError(f"must be a relative path inside the record folder, got {name!r}")


def parse_date(text: str) -> dt.date | dt.datetime:
    """ISO 8601 date (2026-03-20) or date-time (2026-03-20T00:00:00Z); ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("date must be a string")
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date: {text!r}") from None


def format_date(value: dt.date | dt.datetime) -> str:
    """Inverse of parse_date: UTC date-times end in Z, as the public files wrote them."""
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text
    return value.isoformat()

"""A record's date decides which SOTA it is judged against, so a pull request may not backdate it: the date must
not precede the newest record of its track already on the base branch, nor lie in the future of the pull
request's own commit."""

from __future__ import annotations

import datetime as dt
import json

import git

from tools.records.schema import parse_date
from tools.verify.pr.scope import Problem

FUTURE_SLACK = dt.timedelta(days=1)  # time zones


def as_day(value: dt.date | dt.datetime) -> dt.date:
    return value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) and value.tzinfo else (
        value.date() if isinstance(value, dt.datetime) else value)


def _blob_date(tree: git.Tree, path: str) -> dt.date | None:
    try:
        document = json.loads((tree / path).data_stream.read(1_000_000))
        return as_day(parse_date(document["date"]))
    except (KeyError, ValueError, TypeError, AttributeError):
        return None  # unreadable: `verify record` reports the schema problem itself


def newest_record_date(base: git.Commit, track: str) -> dt.date | None:
    try:
        track_tree = base.tree / "records" / track
    except KeyError:
        return None
    dates = [_blob_date(record, "submission.json") for record in track_tree.trees]
    return max((d for d in dates if d is not None), default=None)


def date_problems(record: str, base: git.Commit, head: git.Commit) -> list[Problem]:
    """Problems with the added record's `date` (empty when it is fine or unreadable)."""
    claimed = _blob_date(head.tree, f"{record}/submission.json")
    if claimed is None:
        return []
    problems = []
    track = record.split("/")[1]
    newest = newest_record_date(base, track)
    if newest is not None and claimed < newest:
        problems.append(Problem("backdated", f"{record}/submission.json: date {claimed} is earlier than the newest "
                                f"{track} record on the base branch ({newest}); a record is judged against the SOTA at "
                                "its date, so it may not be backdated"))
    committed = head.committed_datetime.astimezone(dt.UTC)
    if dt.datetime.combine(claimed, dt.time(), dt.UTC) > committed + FUTURE_SLACK:
        problems.append(Problem("future_date", f"{record}/submission.json: date {claimed} is in the future of the "
                                f"pull request's commit ({committed.date()})"))
    return problems

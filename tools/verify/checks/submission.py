"""`schema` (submission.json reads as schema 1) and `track` (the folder's track exists and is the one claimed)."""

from __future__ import annotations

from tools.records.model import CheckResult
from tools.verify.checks.common import RecordContext, result


def check_schema(ctx: RecordContext) -> CheckResult:
    submission = ctx.record.submission
    if submission is None and (ctx.record.submission_error or "").endswith(": missing"):
        return result("schema", "skip", f"no {ctx.record.submission_file} (see files)")
    if submission is None:
        error = (ctx.record.submission_error or "missing or unreadable").replace(f"{ctx.record.path}/", "")
        return result("schema", "fail", error if "submission.json" in error else f"submission.json: {error}")
    if submission.legacy:
        unknown = ", ".join(submission.unknown_fields) or "none"
        return result(
            "schema", "warn", f"submission.json: legacy format (no schema field); unknown: {unknown}",
            unknown_fields=list(submission.unknown_fields),
        )
    return result("schema", "pass", f"submission.json: schema {submission.schema}, {len(submission.seeds)} seeds")


def check_track(ctx: RecordContext) -> CheckResult:
    folder_track = ctx.record.track_id
    if ctx.track is None:
        known = ", ".join(ctx.known_tracks) or "none"
        return result("track", "fail", f"records/{folder_track}/: not a track in tracks.toml (known: {known})")
    submission = ctx.record.submission
    if submission is None:
        return result("track", "pass", f"records/{folder_track}/: a known track (submission.json unreadable, see schema)")
    if submission.track is None:
        return result("track", "pass", f"records/{folder_track}/: a known track; submission.json names none (legacy)")
    if not ctx.track.accepts_track_name(submission.track):
        return result(
            "track", "fail", f"submission.json: track {submission.track!r} but the record is in records/{folder_track}/"
        )
    if submission.track != folder_track:
        return result("track", "pass", f"submission.json: track {submission.track!r} is ruleset "
                                       f"{ctx.track.ruleset}'s name for records/{folder_track}/")
    return result("track", "pass", f"submission.json: track {folder_track!r} matches its folder")

"""A track's numeric rules, each decided in exactly one function.

The static checks (tools.verify.checks), the reproduction (tools.verify.reproduce), the PR gate
(tools.verify.pr.scope) and the run service all call these, so a cap is written once and cannot drift between
them. Pure: numbers and names in, a verdict out; the callers phrase their own messages around it.

| rule | function |
|---|---|
| what counts toward the artifact cap | `counted_files`, `submission_bytes` |
| the artifact cap (equal passes, one more fails) | `artifact_cap_problem` |
| a time cap, with a ruleset's grace for the step that crossed it | `time_cap_verdict` |
| the largest single file a record (or a pull request) may hold | `MAX_FILE_BYTES` |
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

MAX_FILE_BYTES = 20_000_000  # no single file of a record (weights included) may be larger
DEFAULT_ARTIFACT_CAP_BYTES = 16_000_000  # the competition's cap, for a record whose track is unknown

# Files that document a record rather than feed its model; everything else a record ships (tokenizers, caches,
# tables, nested "artifacts") is available to its code at evaluation and counts toward the cap.
DOCUMENTATION_FILES = frozenset({"README.md", "submission.json", "requirements.txt", "curves.png", "verification.json"})

TimeVerdict = Literal["pass", "warn", "fail"]


def counted_files(files: Iterable[str], *, script: str, logs: Iterable[str], artifacts: Iterable[str],
                  symlinks: Iterable[str] = ()) -> list[str]:
    """The record's files beyond its script, logs, per-seed artifacts and documentation: each counts toward the
    cap (a symlink is never followed, so it counts nothing and is the `files` check's business)."""
    accounted = {script, *DOCUMENTATION_FILES, *logs, *artifacts, *symlinks}
    return [name for name in files if name not in accounted]


def submission_bytes(model_bytes: int, code_bytes: int, extra_bytes: int = 0) -> int:
    """What a submission weighs against the cap: the model, the code and every other file it ships."""
    return model_bytes + code_bytes + extra_bytes


def artifact_cap_problem(total: int, cap: int, what: str) -> str | None:
    """None when `total` fits the cap (equal passes); else one line naming what is over and by how much."""
    if total <= cap:
        return None
    return f"{what}: {total:,} bytes > cap {cap:,} (over by {total - cap:,})"


def time_cap_verdict(value_ms: float, cap_s: float, grace_s: float = 0.0) -> TimeVerdict:
    """pass within the cap; warn past it by at most the grace (a run that checks the clock between steps stops on the
    first step past the cap: the overshoot is shown, never hidden); fail beyond."""
    cap_ms = cap_s * 1000.0
    if value_ms <= cap_ms:
        return "pass"
    return "warn" if value_ms <= cap_ms + grace_s * 1000.0 else "fail"

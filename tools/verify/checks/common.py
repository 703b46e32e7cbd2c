"""What every check reads: the loaded record, its track, the SOTA baseline, and small helpers for messages."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.records.model import CheckResult, ParsedLog, Record, Status, Track
from tools.records.paths import read_regular_file

SCRIPT_NAME = "train_gpt.py"
MAX_FILE_BYTES = 20_000_000  # no single file of a record (weights included) may be larger


@dataclass(frozen=True)
class Baseline:
    """What the candidate must beat: SOTA's mean (and seed values, when known) of the track's metric."""

    mean: float
    values: tuple[float, ...] | None = None
    source: str = "--against"  # "--against" or the SOTA record's folder


@dataclass(frozen=True)
class SeedLog:
    name: str  # file name inside the record folder
    log: ParsedLog

    @property
    def seed(self) -> int | None:
        return self.log.seed


@dataclass
class RecordContext:
    record: Record
    track: Track | None
    known_tracks: tuple[str, ...] = ()
    datasets_root: Path | None = None
    baseline: Baseline | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def legacy(self) -> bool:
        """A public-competition record: data it never had is a skip, not a failure."""
        return self.record.submission is not None and self.record.submission.legacy

    @functools.cached_property
    def script(self) -> bytes | None:
        """train_gpt.py's bytes (never through a symlink); None when absent or unreadable."""
        path = self.record.script_path
        if path is None:
            return None
        try:
            data, truncated = read_regular_file(path, MAX_FILE_BYTES, follow_symlinks=False)
        except (OSError, ValueError):
            return None
        return None if truncated else data

    @functools.cached_property
    def logs(self) -> tuple[SeedLog, ...]:
        """Every parsed log, ordered by seed, the log submission.json names for its seed first, then file name
        (logs without a seed line last)."""
        submission = self.record.submission
        claimed_logs = {r.log for r in submission.seed_results.values()} if submission is not None else set()
        items = [SeedLog(name, log) for name, log in self.record.logs.items()]
        return tuple(sorted(items, key=lambda s: (s.seed is None, s.seed if s.seed is not None else 0,
                                                   s.name not in claimed_logs, s.name)))  # fmt: skip

    def metric_values(self, metric: str = "val_bpb") -> list[tuple[str, float]]:
        """One (log name, value) per distinct seed: a rerun of the same seed must not count twice."""
        seen: set[int] = set()
        values = []
        for item in self.logs:
            value = getattr(item.log, metric)
            if value is None:
                continue
            if item.seed is not None:
                if item.seed in seen:
                    continue
                seen.add(item.seed)
            values.append((item.name, float(value)))
        return values


def result(check_id: str, status: Status, message: str, **evidence: Any) -> CheckResult:
    return CheckResult(id=check_id, status=status, message=message, evidence=evidence)


def sample_std(values: list[float]) -> float | None:
    """Sample standard deviation (ddof=1); None for fewer than two values or any non-finite one."""
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        return None
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def first_and_count(problems: list[str]) -> str:
    """One line: the first problem, and how many more there are."""
    more = len(problems) - 1
    return problems[0] + (f" (+{more} more)" if more > 0 else "")


def decimals(value: str | float) -> int:
    """Decimal places a number was printed with: '1.23450000' -> 8, 175000.0 -> 0, '1e-05' -> 5."""
    text = value if isinstance(value, str) else repr(float(value))
    text = text.strip().lower()
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    if not isinstance(value, str):
        fraction = fraction.rstrip("0")  # repr(175000.0) has a '.0' the printer never wrote
    places = len(fraction) - (int(exponent) if exponent else 0)
    return max(places, 0)


def agree_at_precision(claim: float, logged: float, logged_decimals: int, min_places: int = 0) -> bool:
    """Equal at the coarser of the two printed precisions (the claim may round the log, never change it), but
    never coarser than `min_places` (or the log's own precision, if that is coarser still): a claim written as
    a round number such as 1.0 must not agree with every log between 0.95 and 1.05."""
    if not (math.isfinite(claim) and math.isfinite(logged)):
        return False
    places = max(min(decimals(claim), logged_decimals), min(min_places, logged_decimals))
    return abs(claim - logged) <= 0.5 * 10.0**-places + 1e-12


def printed_token(line: str | None, key: str) -> str | None:
    """The text of `key:<value>` in a log line, as printed (to know its precision)."""
    if not line:
        return None
    from tools.records.logparse import parse_tokens

    return parse_tokens(line).get(key)


def fmt_seconds(ms: float) -> str:
    return f"{ms / 1000:.3f} s"


def cap_seconds(seconds: float) -> str:
    return f"{seconds:g} s"

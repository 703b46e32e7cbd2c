"""What every check reads: the loaded record, its track, the SOTA baseline, and small helpers for messages."""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.records.logparse import parse_tokens
from tools.records.model import CheckResult, FinalScore, ParsedLog, Record, Status, Track
from tools.records.paths import read_regular_file
from tools.records.rules import MAX_FILE_BYTES  # noqa: F401  (re-exported for the checks)

SCRIPT_NAME = "train_gpt.py"
SEED_IN_NAME = re.compile(r"seed[_-]?(\d+)")


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
        """A public-competition record (a submission.json without `schema`, or no readable one under a ruleset other
        than our own): data it never had is a skip, not a failure."""
        submission = self.record.submission
        if submission is not None:
            return submission.legacy
        return self.track is not None and self.track.ruleset != "tracks"

    def read_file(self, relative: str) -> bytes | None:
        """A file of the record (never through a symlink, at most MAX_FILE_BYTES); None when unreadable."""
        if relative in self.record.symlinks:
            return None
        try:
            data, truncated = read_regular_file(self.record.path / relative, MAX_FILE_BYTES, follow_symlinks=False)
        except (OSError, ValueError):
            return None
        return None if truncated else data

    @property
    def entry_patterns(self) -> tuple[str, ...]:
        return self.track.entry_scripts if self.track is not None else (SCRIPT_NAME,)

    @functools.cached_property
    def script_name(self) -> str | None:
        """The training script: the first of the track's `entry_scripts` patterns that names a top-level file (our
        tracks: train_gpt.py only); among several matches, the one a log embeds, else the first by name."""
        top_level = sorted(name for name in self.record.files
                           if "/" not in name and name.endswith(".py") and name not in self.record.symlinks)
        embedded = {log.code.encode("utf-8", "surrogateescape") for log in self.record.logs.values() if log.code}
        for pattern in self.entry_patterns:
            matching = [name for name in top_level if fnmatch.fnmatchcase(name, pattern)]
            if len(matching) > 1 and embedded:
                ran = [name for name in matching if self.read_file(name) in embedded]
                matching = ran or matching
            if matching:
                return matching[0]
        return None

    @functools.cached_property
    def script(self) -> bytes | None:
        """The training script's bytes (never through a symlink); None when absent or unreadable."""
        return self.read_file(self.script_name) if self.script_name is not None else None

    @functools.cached_property
    def duplicate_logs(self) -> dict[str, str]:
        """Logs that are byte copies of another log of the record (a `train.log` beside `train_seed42.log`):
        copy -> the log kept. A run shipped twice is one run."""
        kept: dict[str, str] = {}
        copies: dict[str, str] = {}
        for item in self._ordered_logs:
            digest = item.log.content_sha256
            if digest is None:
                continue
            if digest in kept:
                copies[item.name] = kept[digest]
            else:
                kept[digest] = item.name
        return copies

    @functools.cached_property
    def _ordered_logs(self) -> tuple[SeedLog, ...]:
        submission = self.record.submission
        claimed_logs = {r.log for r in submission.seed_results.values()} if submission is not None else set()
        items = [SeedLog(name, log) for name, log in self.record.logs.items()]
        return tuple(sorted(items, key=lambda s: (s.seed is None, s.seed if s.seed is not None else 0,
                                                   s.name not in claimed_logs, s.name)))  # fmt: skip

    @functools.cached_property
    def score_notes(self) -> list[str]:
        """Which final line was taken as each log's score when a log prints several (filled by `logs`)."""
        _ = self.logs
        return self._score_notes

    @functools.cached_property
    def logs(self) -> tuple[SeedLog, ...]:
        """Every parsed log but byte copies, ordered by seed, the log submission.json names for its seed first,
        then file name (logs without a seed line last). A public log that prints several final scores is scored
        by the line its claim names (see select_claimed_score)."""
        self._score_notes: list[str] = []
        unique = [item for item in self._ordered_logs if item.name not in self.duplicate_logs]
        # Choosing among several final lines by the claim is for public records only: on our tracks the score is
        # the log's one `_exact` line, whatever a hostile log prints beside it or the claim says.
        family = self._headline_family(unique) if self.legacy else None
        items = []
        for item in unique:
            chosen = next((f for f in item.log.final_scores if f.label == family), None) if family else None
            if chosen is not None and chosen.val_bpb != item.log.val_bpb:
                log = replace_score(item.log, chosen)
                self._score_notes.append(f"{item.name}: scored by its `{family}` line ({chosen.val_bpb}), the "
                                         f"evaluation whose mean over the logs is the headline")
            else:
                claim = self.claimed_bpb(item) if self.legacy else None
                log, note = select_claimed_score(item.name, item.log, claim, self.claim_min_decimals)
                if note:
                    self._score_notes.append(note)
            items.append(SeedLog(item.name, log))
        return tuple(items)

    def _headline_family(self, items: list[SeedLog]) -> str | None:
        """A public submission with only a headline over several logs that each print several final scores: the
        evaluation (final line label) every log prints whose mean is the headline, if exactly that one is."""
        submission = self.record.submission
        if (submission is None or submission.seeds or submission.val_bpb is None or len(items) < 2
                or any(item.log.contract_format for item in items)):
            return None
        labels = set.intersection(*({f.label for f in item.log.final_scores if f.val_bpb is not None} for item in items))
        default_mean = _mean([item.log.val_bpb for item in items])
        if default_mean is not None and agree_at_precision(submission.val_bpb, default_mean, 8, self.claim_min_decimals):
            return None
        fitting = []
        for label in sorted(labels):
            values = [next(f.val_bpb for f in item.log.final_scores if f.label == label) for item in items]
            if agree_at_precision(submission.val_bpb, math.fsum(values) / len(values), 8, self.claim_min_decimals):
                fitting.append(label)
        if len({label.replace("_exact", "") for label in fitting}) != 1:
            return None  # none, or several different evaluations fit: no choice is made
        return next((label for label in fitting if "_exact" in label), fitting[0])

    @functools.cached_property
    def claim_matching(self) -> tuple[dict[int, SeedLog], list[str]]:
        """Each claimed seed's log and the problems finding them: the log its result names, else a log that ran
        that seed (public logs: the seed in the file name), preferring one whose score is the claimed one."""
        submission = self.record.submission
        if submission is None:
            return {}, []
        by_name = {item.name: item for item in self.logs}
        by_seed: dict[int, list[SeedLog]] = {}
        for item in self.logs:
            seed = self.seed_of(item)
            if seed is not None:
                by_seed.setdefault(seed, []).append(item)
        matched: dict[int, SeedLog] = {}
        problems: list[str] = []
        for seed in submission.seeds:
            claim = submission.seed_results.get(seed)
            named = claim.log if claim is not None else None
            named = self.duplicate_logs.get(named, named) if named is not None else None
            if named is not None:
                if named in by_name:
                    matched[seed] = by_name[named]
                elif named in self.record.log_errors:
                    problems.append(f"submission.json: seed {seed}'s log {named} is unreadable (see files)")
                else:
                    problems.append(f"submission.json: seed {seed}'s log {named} is not in the record")
            elif seed in by_seed:
                candidates = by_seed[seed]
                claimed = claim.val_bpb if claim is not None else None
                fitting = [item for item in candidates if claimed is not None and item.log.val_bpb is not None
                           and agrees_with_line(claimed, item.log.val_bpb, item.log.score_line, self.claim_min_decimals)]
                # A claim printed coarsely may fit several runs of its seed (a rerun, an eval-only re-run): the
                # closest is the one it was rounded from.
                fitting.sort(key=lambda item: abs(item.log.val_bpb - claimed))
                matched[seed] = (fitting or candidates)[0]
            else:
                problems.append(f"submission.json: seed {seed} has no log")
        return matched, problems

    @property
    def counted_logs(self) -> tuple[SeedLog, ...]:
        """The logs a verdict is computed from: every log, except that a public record which lists its seeds is
        judged by the logs of those seeds; its other logs (ablations, reruns, studies) are supplementary."""
        matched, _ = self.claim_matching
        submission = self.record.submission
        if self.legacy and not matched and submission is not None and not submission.seeds:
            return self._headline_logs(submission.val_bpb)
        if not (self.legacy and matched):
            return self.logs
        names = {item.name for item in matched.values()}
        return tuple(item for item in self.logs if item.name in names)

    def _headline_logs(self, headline: float | None) -> tuple[SeedLog, ...]:
        """A public submission with only a headline: every log counts (the headline is their mean), unless the
        headline is exactly one log's own score and not the mean: then a study's other logs (ablations, other
        configurations) are supplementary."""
        if headline is None or len(self.logs) < 2:
            return self.logs
        scores = [item.log.val_bpb for item in self.logs]
        mean = _mean(scores)
        if mean is not None and abs(mean - headline) <= 10.0 ** -max(decimals(headline), self.claim_min_decimals):
            return self.logs
        own = tuple(item for item in self.logs if item.log.val_bpb is not None
                    and agrees_with_line(headline, item.log.val_bpb, item.log.score_line, self.claim_min_decimals))
        return own if len(own) == 1 else self.logs

    @property
    def supplementary_logs(self) -> list[str]:
        counted = {item.name for item in self.counted_logs}
        return [item.name for item in self.logs if item.name not in counted]

    @property
    def claim_min_decimals(self) -> int:
        return self.track.claim_min_decimals if self.track is not None else 4

    def seed_of(self, item: SeedLog) -> int | None:
        """The log's seed line, else (public logs print none) the seed in its file name (train_seed42.log)."""
        if item.seed is not None:
            return item.seed
        named = SEED_IN_NAME.search(item.name) if self.legacy else None
        return int(named.group(1)) if named else None

    def claimed_bpb(self, item: SeedLog) -> float | None:
        """The val_bpb submission.json claims for this log's run: its seed's result (the result naming the log
        first), else the headline when the record claims a single run."""
        submission = self.record.submission
        if submission is None:
            return None
        for result in submission.seed_results.values():
            if result.log == item.name:
                return result.val_bpb
        seed = self.seed_of(item)
        if seed is not None and seed in submission.seed_results:
            return submission.seed_results[seed].val_bpb
        if len(submission.seeds) <= 1 and len(self.record.logs) - len(self.duplicate_logs) == 1:
            return submission.val_bpb
        return None

    def metric_values(self, metric: str = "val_bpb") -> list[tuple[str, float]]:
        """One (log name, value) per distinct seed: a rerun of the same seed must not count twice."""
        seen: set[int] = set()
        values = []
        for item in self.counted_logs:
            value = getattr(item.log, metric)
            if value is None:
                continue
            seed = self.seed_of(item)
            if seed is not None:
                if seed in seen:
                    continue
                seen.add(seed)
            values.append((item.name, float(value)))
        return values


def _mean(values: list[float | None]) -> float | None:
    if not values or any(value is None for value in values):
        return None
    return math.fsum(values) / len(values)


def select_claimed_score(
    name: str, log: ParsedLog, claim: float | None, min_places: int
) -> tuple[ParsedLog, str | None]:
    """The log with its score taken from the final line its claim names, and a note saying so.

    A public log may print several final scores (a round trip, then sliding windows, then test-time training); the
    record's claim says which evaluation it submits. Our own format has one `_exact` score line by contract: it is
    never re-chosen (a second final score there is score_progression's warning). A claim that matches no line
    leaves the default (the last final line), and claims_match_logs fails it.
    """
    if log.contract_format or claim is None or not log.final_scores:
        return log, None
    if log.val_bpb is not None and agrees_with_line(claim, log.val_bpb, log.score_line, min_places):
        return log, None
    matching = [final for final in log.final_scores
                if final.val_bpb is not None and agrees_with_line(claim, final.val_bpb, final.line, min_places)]
    if not matching:
        return log, None
    chosen = matching[-1]
    others = ", ".join(f"{final.label} {final.val_bpb}" for final in log.final_scores if final is not chosen)
    note = f"{name}: scored by its `{chosen.label}` line ({chosen.val_bpb}), the one claimed; other final lines: {others}"
    return replace_score(log, chosen), note


def replace_score(log: ParsedLog, final: FinalScore) -> ParsedLog:
    return dataclasses.replace(log, val_bpb=final.val_bpb, val_loss=final.val_loss, score_line=final.line,
                               eval_time_ms=final.eval_time_ms if final.eval_time_ms is not None else log.eval_time_ms)


def agrees_with_line(claim: float, logged: float, line: str | None, min_places: int) -> bool:
    """A claimed score against a logged one, at the precision the log printed it with."""
    token = printed_token(line, "val_bpb")
    return agree_at_precision(claim, logged, decimals(token) if token else 8, min_places)


def not_applicable(track: Track | None, what: str) -> str | None:
    """Why a judge that runs a record's code (probes, rescore, tokenizer audit, reproduction) does not apply to a
    record of `track`, as the one line its `skip` says; None when it applies. On a track the run service scores
    (`scored_by = "service"`) the record ships no scorer: the service exported each seed's model and scored it
    itself, its evaluation is in every log's `service:` line, and only the service can re-run the code."""
    if track is None or not track.scored_by_service:
        return None
    return (f"not applicable on this track ({track.id}, scored by the run service): {what}; the record ships no "
            f"scorer for the judge to run, and only the service can run its code")


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

    return parse_tokens(line).get(key)


def fmt_seconds(ms: float) -> str:
    return f"{ms / 1000:.3f} s"


def cap_seconds(seconds: float) -> str:
    return f"{seconds:g} s"

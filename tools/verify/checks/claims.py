"""`claims_match_logs`: every number submission.json claims is what the logs print.

Floats are compared at the coarser of the two printed precisions (a claim may round its log, not change it: a
claim that differs from an 8-decimal log in the 4th decimal fails), never coarser than the track's
`claim_min_decimals`; integers (steps, bytes) and hashes exactly. Seeds: the claimed seeds are exactly the seeds the
logs ran, each claimed seed has its log, every log belongs to a claimed seed. The headline mean equals the mean of
the seeds' logged scores (or of the claimed seed scores, rounded as printed), the std their sample std (ddof=1).

A public (legacy) submission is read as the competition wrote them: a headline may be the best or the first seed
instead of the mean, the std may be the population std (each accepted and said, with a warning for a headline that
is not the mean); `artifact_bytes` may mean the total; a top-level size belongs to one seed, not each; and a claimed
time, size or step count that its log does not print is a warning, since the caps are checked from the logs
themselves. Scores, seeds and the headline decide a verdict, so their mismatches always fail.
"""

from __future__ import annotations

import math

from tools.records.model import CheckResult, ParsedLog, SeedResult
from tools.verify.checks.common import (
    RecordContext,
    SeedLog,
    agree_at_precision,
    decimals,
    first_and_count,
    printed_token,
    result,
    sample_std,
)

CHECK_ID = "claims_match_logs"
_DEFAULT_LOG_DECIMALS = 8  # when the printed text of a score cannot be recovered
TIME_MIN_PLACES = 1  # times to 0.1 s


def _score_decimals(log: ParsedLog, key: str) -> int:
    token = printed_token(log.score_line, key)
    return decimals(token) if token else _DEFAULT_LOG_DECIMALS


def _time_decimals_s(ms: float) -> int:
    return decimals(ms) + 3  # "175000ms" is printed to the millisecond: 3 decimals in seconds


class _Findings:
    """Problems that decide the verdict (scores, seeds, headline) and those that only inform (times, sizes, steps:
    the caps are checked from the logs, not the claims). Notes say how a claim was read."""

    def __init__(self) -> None:
        self.decisive: list[str] = []
        self.informative: list[str] = []
        self.notes: list[str] = []


def _compare_seed(ctx: RecordContext, claim: SeedResult, item: SeedLog, found: _Findings) -> None:
    """Mismatches between one seed's claim and its log, each naming both sides."""
    log, name = item.log, item.name
    where = f"submission.json: seed {claim.seed}"
    shared = set(ctx.record.submission.shared_fields)
    if log.seed is not None and log.seed != claim.seed:
        found.decisive.append(f"{where}: its log {name} ran seed {log.seed}")
    for key in ("val_bpb", "val_loss"):
        claimed, logged = getattr(claim, key), getattr(log, key)
        if claimed is None:
            continue
        # The ranked number is val_bpb; a public file's val_loss decides nothing, so its mismatch only informs.
        problems = found.informative if key == "val_loss" and ctx.legacy else found.decisive
        if logged is None:
            problems.append(f"{where}: {key} {claimed} claimed but {name} has no score line")
        elif not agree_at_precision(claimed, logged, _score_decimals(log, key), ctx.claim_min_decimals):
            problems.append(f"{where}: {key} {claimed!r} but {name} says {printed_token(log.score_line, key) or logged}")
    for key, log_key in (("train_time_s", "train_time_ms"), ("eval_time_s", "eval_time_ms")):
        claimed, logged_ms = getattr(claim, key), getattr(log, log_key)
        if claimed is None:
            continue
        if logged_ms is None:
            found.informative.append(f"{where}: {key} {claimed} claimed but {name} logs no {log_key[:-3]}")
        elif not agree_at_precision(claimed, logged_ms / 1000.0, _time_decimals_s(logged_ms), TIME_MIN_PLACES):
            found.informative.append(f"{where}: {key} {claimed!r} but {name} says {logged_ms:g} ms")
    for key, log_keys in _integer_claims(ctx.legacy):
        claimed = getattr(claim, key)
        if claimed is None or key in shared:
            continue
        logged = [getattr(log, log_key) for log_key in log_keys if getattr(log, log_key) is not None]
        if not logged:
            found.informative.append(f"{where}: {key} {claimed} claimed but {name} does not log it")
        elif claimed not in logged:
            problems = found.decisive if key == "code_sha256" else found.informative
            problems.append(f"{where}: {key} {claimed} but {name} says {logged[0]}")
        elif claimed != logged[0]:
            found.notes.append(f"seed {claim.seed}: {key} {claimed} is the log's {log_keys[logged.index(claimed)]}")


def _integer_claims(legacy: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Claimed integer -> the log values it may equal, preferred first. Public files used `artifact_bytes` for the
    total and counted code compressed; our schema means exactly the first."""
    if legacy:
        return (("steps", ("steps",)), ("artifact_bytes", ("model_bytes", "bytes_total")),
                ("code_bytes", ("code_bytes", "code_bytes_compressed")), ("bytes_total", ("bytes_total",)),
                ("code_sha256", ("code_sha256",)))  # fmt: skip
    return (("steps", ("steps",)), ("artifact_bytes", ("model_bytes",)), ("code_bytes", ("code_bytes",)),
            ("bytes_total", ("bytes_total",)), ("code_sha256", ("code_sha256",)))  # fmt: skip


def _shared_sizes(ctx: RecordContext, matched: dict[int, SeedLog], found: _Findings) -> None:
    """A size a public file gave once at its top level belongs to one of its runs: it must be some seed's."""
    submission = ctx.record.submission
    for key in submission.shared_fields:
        claimed = getattr(submission.seed_results[submission.seeds[0]], key)
        log_keys = dict(_integer_claims(True))[key]
        owners = [item.name for item in matched.values()
                  if any(getattr(item.log, log_key) == claimed for log_key in log_keys)]
        if owners:
            found.notes.append(f"top-level {key} {claimed} is {owners[0]}'s")
        elif any(getattr(item.log, log_key) is not None for item in matched.values() for log_key in log_keys):
            found.informative.append(f"submission.json: top-level {key} {claimed} is no seed's logged value")


def _agrees(claim: float, value: float, precision: int, min_places: int) -> bool:
    return agree_at_precision(claim, value, precision, min_places)


def _headline(ctx: RecordContext, values: list[float], losses: list[float], claimed_seed_bpbs: list[float],
              precision: int, found: _Findings) -> None:
    """The headline numbers against the seeds' values: the mean (from the logs, or from the claimed seed scores as
    printed); for a public file also the best or the first seed (said, and warned)."""
    submission = ctx.record.submission
    places = ctx.claim_min_decimals
    if values and submission.val_bpb is not None:
        claim = submission.val_bpb
        mean = math.fsum(values) / len(values)
        claimed_mean = math.fsum(claimed_seed_bpbs) / len(claimed_seed_bpbs) if claimed_seed_bpbs else None
        if _agrees(claim, mean, precision, places) or (
            claimed_mean is not None and _agrees(claim, claimed_mean, decimals(claim), places)
        ):
            pass
        elif ctx.legacy and len(values) > 1 and abs(claim - mean) <= 10.0 ** -max(decimals(claim), places) + 1e-12:
            # A mean of per-seed scores rounded to the headline's precision differs from the exact mean by up to
            # one unit in that place (half from rounding the seeds, half from rounding the mean).
            found.notes.append(f"headline val_bpb {claim} is the mean of the seeds' scores rounded as printed "
                               f"(exact mean {mean:.8f})")
        elif ctx.legacy and len(values) > 1 and _agrees(claim, min(values), precision, places):
            found.notes.append(f"headline val_bpb {claim} is the best seed's ({min(values)}), not the mean ({mean:.8f})")
            found.informative.append(found.notes[-1])
        elif ctx.legacy and len(values) > 1 and _agrees(claim, values[0], precision, places):
            found.notes.append(f"headline val_bpb {claim} is the first seed's ({values[0]}), not the mean ({mean:.8f})")
            found.informative.append(found.notes[-1])
        elif ctx.legacy and (line := _single_line(ctx, claim)) is not None:
            found.notes.append(f"headline val_bpb {claim} is {line}, not the mean of the seeds' scores ({mean:.8f})")
            found.informative.append(found.notes[-1])
        else:
            found.decisive.append(f"submission.json: val_bpb {claim!r} but the seeds' logged mean is {mean:.8f}")
    if losses and submission.val_loss is not None:
        mean_loss = math.fsum(losses) / len(losses)
        options = [mean_loss, *((min(losses), losses[0]) if ctx.legacy else ())]
        if not any(_agrees(submission.val_loss, option, precision, places) for option in options):
            problems = found.informative if ctx.legacy else found.decisive
            problems.append(f"submission.json: val_loss {submission.val_loss!r} but the seeds' logged mean is {mean_loss:.8f}")
    if submission.val_bpb_std is not None:
        std = sample_std(values)
        claimed_std = sample_std(claimed_seed_bpbs)
        if claimed_std is not None and _agrees(submission.val_bpb_std, claimed_std, decimals(submission.val_bpb_std), places):
            std = claimed_std  # computed from the seed scores as the file prints them
        if std is not None:
            population = std * math.sqrt((len(values) - 1) / len(values))
            if _agrees(submission.val_bpb_std, std, precision, places):
                pass
            elif ctx.legacy and _agrees(submission.val_bpb_std, population, precision, places):
                found.notes.append(f"val_bpb_std {submission.val_bpb_std} is the population std (ddof=0)")
            else:  # the t-test uses the logs' values, never a claimed std: a public file's std only informs
                problems = found.informative if ctx.legacy else found.decisive
                problems.append(f"submission.json: val_bpb_std {submission.val_bpb_std!r} but the seeds' sample std is {std:.8f}")
        elif len(values) == 1 and submission.val_bpb_std != 0:
            found.informative.append(f"submission.json: val_bpb_std {submission.val_bpb_std!r} claimed for a single seed")


def _single_line(ctx: RecordContext, claim: float) -> str | None:
    """`<log>'s <label> line` when one final line of one counted log is the claimed headline."""
    for item in ctx.counted_logs:
        for final in item.log.final_scores:
            if final.val_bpb is not None and _agrees(claim, final.val_bpb, decimals(printed_token(final.line, "val_bpb") or "0." + "0" * 8), ctx.claim_min_decimals):
                return f"{item.name}'s `{final.label}` line ({final.val_bpb})"
    return None


def _verdict(ctx: RecordContext, found: _Findings, passed: str, **evidence) -> CheckResult:
    notes = [*ctx.score_notes, *found.notes]
    evidence = {**evidence, "notes": notes}
    informative_fails = not ctx.legacy  # our schema: every claim is exact
    failures = found.decisive + (found.informative if informative_fails else [])
    if failures:
        return result(CHECK_ID, "fail", first_and_count(failures), problems=failures, **evidence)
    if found.informative:
        return result(CHECK_ID, "warn", first_and_count(found.informative), problems=found.informative, **evidence)
    note = f"; {'; '.join(notes)}" if notes else ""
    return result(CHECK_ID, "pass", passed + note, **evidence)


def check_claims_match_logs(ctx: RecordContext) -> CheckResult:
    submission = ctx.record.submission
    if submission is None:
        return result(CHECK_ID, "skip", "no readable submission.json (see schema)")
    if not ctx.logs:
        return result(CHECK_ID, "skip", "no logs to compare the claims with (see files)")
    found = _Findings()

    if not submission.seeds:
        # Public files: only headline numbers. Compare them with the logs' scores.
        scored = [item for item in ctx.counted_logs if item.log.val_bpb is not None]
        if not scored and submission.val_bpb is not None:
            return result(CHECK_ID, "fail", f"submission.json: val_bpb {submission.val_bpb} claimed but no log prints a "
                                            f"final score ({', '.join(item.name for item in ctx.logs)})")
        if not scored:
            return result(CHECK_ID, "skip", "legacy record: no scores in the logs to compare the headline with")
        precision = min(_score_decimals(item.log, "val_bpb") for item in scored)
        values = [value for _, value in ctx.metric_values("val_bpb")]
        losses = [item.log.val_loss for item in scored if item.log.val_loss is not None]
        _headline(ctx, values, losses if len(losses) == len(scored) else [], [], precision, found)
        return _verdict(ctx, found, f"legacy record: headline val_bpb {submission.val_bpb} matches {len(values)} log(s)")

    claimed = set(submission.seeds)
    for item in ctx.logs:
        if item.seed is None:
            if not ctx.legacy:  # a public log prints no seed line; it is matched by its file name instead
                found.decisive.append(f"{item.name}: no seed line, cannot tell which claimed seed it belongs to")
        elif item.seed not in claimed and not ctx.legacy:
            found.decisive.append(f"{item.name}: ran seed {item.seed}, which submission.json does not claim")
    supplementary = ctx.supplementary_logs if ctx.legacy else []
    if supplementary:
        found.notes.append(f"not counted (no claimed seed's log): {', '.join(supplementary)}")
    matched, matching_problems = ctx.claim_matching
    found.decisive += matching_problems
    for seed, item in matched.items():
        claim = submission.seed_results.get(seed)
        if claim is not None:
            _compare_seed(ctx, claim, item, found)
        elif item.seed is not None and item.seed != seed:
            found.decisive.append(f"submission.json: seed {seed}: its log {item.name} ran seed {item.seed}")
    if ctx.legacy:
        _shared_sizes(ctx, matched, found)

    scored = [item for item in matched.values() if item.log.val_bpb is not None]
    if scored and len(scored) == len(matched):
        precision = min(_score_decimals(item.log, "val_bpb") for item in scored)
        losses = [item.log.val_loss for item in scored]
        claimed_bpbs = [submission.seed_results[seed].val_bpb for seed in matched
                        if seed in submission.seed_results and submission.seed_results[seed].val_bpb is not None]
        _headline(ctx, [item.log.val_bpb for item in scored], losses if None not in losses else [],
                  claimed_bpbs if len(claimed_bpbs) == len(matched) else [], precision, found)
    evidence = {"seeds": list(submission.seeds), "logs": {seed: item.name for seed, item in matched.items()}}
    return _verdict(ctx, found, f"submission.json: {len(matched)} seeds' claims and the headline mean/std match "
                                f"their logs", **evidence)

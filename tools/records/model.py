"""The shared vocabulary of the tools: tracks, submissions, seed runs, parsed logs, check results.

Plain frozen dataclasses: loaders (tracks.py, schema.py, legacy.py, logparse.py, record.py) build them from files,
the judge (tools.verify) reads them and returns CheckResults, the publisher (tools.submit) renders them.
`None` always means "unknown" (not in the file, or not found in the log) — never a silent zero.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "fail", "warn", "skip"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "warn", "skip")


class RecordError(Exception):
    """Input that cannot be read at all (bad usage / unreadable record): the CLIs turn this into exit code 2.

    `where` names the file (and line, when known) so the message can be one clear line.
    """

    def __init__(self, where: str | Path, message: str):
        self.where = str(where)
        self.message = message
        super().__init__(f"{self.where}: {message}")


@dataclass(frozen=True)
class Significance:
    metric: str  # "val_bpb"
    test: str  # "one_sided_t"
    alpha: float  # 0.01
    min_improvement: float  # 0.005: the candidate must beat SOTA - min_improvement
    enforce: bool = True  # False: the test is computed and reported (a historical ruleset), never a failure


@dataclass(frozen=True)
class Track:
    id: str
    title: str
    hardware: str
    nproc: int
    train_time_cap_s: float | None  # None: no cap (non-record track)
    eval_time_cap_s: float | None
    artifact_cap_bytes: int  # decimal; equal passes, one more fails
    code_line_cap: int | None  # None: the ruleset caps no record's code (the public one caps only its baseline)
    dataset: str  # dataset folder name under data/datasets/
    tokenizer: str
    min_seeds: int
    ranked: bool  # False: never ranked against SOTA (non-record track)
    reproducible_in_ci: bool
    reproduce_tolerance_bpb: float
    significance: Significance
    env: Mapping[str, str] = field(default_factory=dict)
    # What a ruleset may add (defaults are our own tracks' strict rules; see records/parameter-golf.toml):
    aliases: tuple[str, ...] = ()  # other names submission.json may give this track
    dataset_variants: tuple[str, ...] = ()  # other datasets a record may use (a changed tokenizer: audit it)
    train_time_grace_s: float = 0.0  # the step that crosses the cap may finish past it: warned up to this
    artifact_counts: str = "every_shipped_file"  # or "code_and_model": see tools.verify.checks.budgets
    compressed_code: bool = False  # code may be counted in a logged self-extracting compressed form
    entry_scripts: tuple[str, ...] = ("train_gpt.py",)  # names of the record's training script, in preference order
    claim_min_decimals: int = 4  # a claimed score must be printed to at least this many decimals
    # "record": the record's own script scores its model (contract §4), so the judge can probe, rescore, audit and
    # re-run it. "service": the run service scored each seed's exported model itself and wrote the logs (docs/SERVICE.md);
    # the record ships no scorer, and the judges that run record code do not apply (they say so).
    scored_by: str = "record"
    ruleset: str = "tracks"  # the name of the table the track came from

    def accepts_track_name(self, name: str) -> bool:
        """The folder's id or one of the ruleset's aliases (`*` in an alias is a wildcard)."""
        return name == self.id or any(fnmatch.fnmatchcase(name, alias) for alias in self.aliases)

    @property
    def scored_by_service(self) -> bool:
        return self.scored_by == "service"

    def dataset_is_variant(self, name: str) -> bool:
        """Another dataset the ruleset allows (a changed tokenizer: legal, flagged for the tokenizer audit)."""
        return name != self.dataset and any(fnmatch.fnmatchcase(name, pattern) for pattern in self.dataset_variants)


@dataclass(frozen=True)
class SeedResult:
    """One seed's numbers as claimed in submission.json (None = not given)."""

    seed: int
    val_bpb: float | None = None
    val_loss: float | None = None
    steps: int | None = None
    train_time_s: float | None = None
    eval_time_s: float | None = None
    artifact_bytes: int | None = None  # compressed model bytes
    code_bytes: int | None = None
    bytes_total: int | None = None  # artifact_bytes + code_bytes
    log: str | None = None  # log file name inside the record folder
    code_sha256: str | None = None


@dataclass(frozen=True)
class Submission:
    """submission.json, read strictly (schema 1) or from a legacy file (schema None, unknowns listed)."""

    schema: int | None
    author: str | None
    github_id: str | None
    name: str | None
    blurb: str | None
    date: dt.date | dt.datetime | None
    track: str | None
    val_bpb: float | None
    val_loss: float | None
    val_bpb_std: float | None
    seeds: tuple[int, ...]
    seed_results: Mapping[int, SeedResult]
    legacy: bool = False
    unknown_fields: tuple[str, ...] = ()  # fields a legacy file did not have
    # Sizes a legacy file gave once at its top level and that every seed inherited: they belong to one run (the
    # headline or best seed), so a judge matches them against any seed's log, not each.
    shared_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class CurvePoint:
    step: int
    train_loss: float | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    train_time_ms: float | None = None


@dataclass(frozen=True)
class FinalScore:
    """One final-evaluation line after training ended (a log may print several: round trip, sliding window, TTT)."""

    label: str  # the evaluation's name: the words before the first key:value
    val_bpb: float | None
    val_loss: float | None
    line: str
    eval_time_ms: float | None = None


@dataclass(frozen=True)
class ParsedLog:
    """What a training log says. Every field the parser could not find is None and named in `missing`."""

    path: str
    code: str | None  # the source embedded at the top of the log
    run_id: str | None = None
    seed: int | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    score_line: str | None = None  # the exact line the score came from
    steps: int | None = None  # last step reached
    planned_steps: int | None = None
    train_time_ms: float | None = None
    eval_time_ms: float | None = None
    stopped_early: bool = False
    model_bytes: int | None = None  # "Serialized model ...: N bytes"
    code_bytes: int | None = None  # the raw code size the script logged
    code_bytes_compressed: int | None = None  # "Code size (compressed)": the size of a self-extracting compressed form
    bytes_total: int | None = None  # "Total submission size ...: N bytes"
    code_sha256: str | None = None  # as logged by the script
    dataset_name: str | None = None
    manifest_sha256: str | None = None
    tokenizer_sha256: str | None = None
    val_tokens: int | None = None
    val_bytes: int | None = None
    hardware: Mapping[str, str] = field(default_factory=dict)
    software: Mapping[str, str] = field(default_factory=dict)
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    curve: tuple[CurvePoint, ...] = ()
    missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    contract_format: bool = False  # written by our trainer (docs/CONTRACTS.md §2): it logs code_sha256
    exact_scores: tuple[tuple[str, float | None], ...] = ()  # every final `*_exact` line: (evaluation name, val_bpb)
    final_scores: tuple[FinalScore, ...] = ()  # every final-evaluation line after training, in order
    content_sha256: str | None = None  # of the whole file: a log shipped twice under two names is one run


@dataclass(frozen=True)
class Record:
    """A record folder as found on disk. Loading never judges; it only reads (and reports unreadable parts)."""

    path: Path  # the folder
    track_id: str  # the name of the parent folder (records/<track>/<record>)
    submission: Submission | None  # None when submission.json is missing or invalid
    submission_error: str | None
    script_path: Path | None  # train_gpt.py
    logs: Mapping[str, ParsedLog]  # by file name
    artifacts: Mapping[int, Path]  # seed -> final_model_seed<SEED>.* when shipped
    files: tuple[str, ...]  # every file, relative to the folder
    # Added by the loader (defaults keep older constructors working):
    log_errors: Mapping[str, str] = field(default_factory=dict)  # log file -> why it could not be read at all
    symlinks: tuple[str, ...] = ()  # entries that are symbolic links (listed in `files`, never read through)
    submission_file: str = "submission.json"  # or the one `submission_*.json` a public record ships instead


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """The verdict on one record: a list of checks plus the statistics behind `significance`."""

    record: str
    checks: list[CheckResult] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    def get(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "record": self.record,
            "checks": [{"id": c.id, "status": c.status, "message": c.message} for c in self.checks],
            "stats": self.stats,
        }

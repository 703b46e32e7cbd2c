"""The static checks of `verify record`: one module per concern, each check a function `(RecordContext) -> CheckResult`.

`CHECKS` lists them in report order with their stable ids (tests and CI depend on the ids). The summarizer that
runs them is tools.verify.checks.verdict.verify_record.
"""

from __future__ import annotations

from collections.abc import Callable

from tools.records.model import CheckResult
from tools.verify.checks.budgets import check_artifact_bytes, check_code_lines, check_eval_time, check_train_time
from tools.verify.checks.claims import check_claims_match_logs
from tools.verify.checks.common import Baseline, RecordContext
from tools.verify.checks.dataset import check_dataset
from tools.verify.checks.files import check_files
from tools.verify.checks.hardware import check_hardware
from tools.verify.checks.logs import (
    check_code_matches_logs,
    check_config_matches_logs,
    check_min_seeds,
    check_seeds_distinct,
)
from tools.verify.checks.progression import check_score_progression
from tools.verify.checks.significance import check_significance
from tools.verify.checks.submission import check_schema, check_track

CHECKS: tuple[tuple[str, Callable[[RecordContext], CheckResult]], ...] = (
    ("files", check_files),
    ("schema", check_schema),
    ("track", check_track),
    ("code_lines", check_code_lines),
    ("artifact_bytes", check_artifact_bytes),
    ("train_time", check_train_time),
    ("eval_time", check_eval_time),
    ("hardware", check_hardware),
    ("claims_match_logs", check_claims_match_logs),
    ("code_matches_logs", check_code_matches_logs),
    ("config_matches_logs", check_config_matches_logs),
    ("seeds_distinct", check_seeds_distinct),
    ("min_seeds", check_min_seeds),
    ("dataset", check_dataset),
    ("score_progression", check_score_progression),
    ("significance", check_significance),
)
CHECK_IDS: tuple[str, ...] = tuple(check_id for check_id, _ in CHECKS)

__all__ = ["CHECKS", "CHECK_IDS", "Baseline", "RecordContext"]

"""The service's settings: one frozen object built by the CLI (or a test) and handed to every layer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tools.records.paths import repo_root
from tools.verify.sandbox import Limits

MAX_CODE_BYTES = 256 * 1024  # a training file; a bigger body is refused with 413
DEFAULT_TIME_BUDGET_S = 180.0
TIME_BUDGET_ENV = "PG_SERVICE_TIME_BUDGET"  # tests and quick looks shorten the budget without a flag
STATE_DIR_ENV = "PG_SERVICE_DIR"


def default_state_dir() -> Path:
    """`logs/service/` under the repository: logs/ is ignored by git, so the database and runs never get committed."""
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured) if configured else repo_root() / "logs" / "service"


def default_time_budget() -> float:
    value = os.environ.get(TIME_BUDGET_ENV)
    return float(value) if value else DEFAULT_TIME_BUDGET_S


@dataclass(frozen=True)
class Budget:
    """Per token, over a rolling window: at most `runs` submissions and `hours` of run time (a queued or running run
    counts its whole time limit, a finished one what it used)."""

    runs: int = 50
    hours: float = 3.0
    window_hours: float = 24.0


@dataclass(frozen=True)
class ServiceConfig:
    state_dir: Path
    dataset_dir: Path  # a byte dataset folder (tools.service.dataset): train/ is shown to runs, val/ never
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    # Startup (imports, loading data) and the export of the model: evaluation must be asked for by
    # time_budget_s + grace_s after the child started, or the run has trained past its budget.
    grace_s: float = 30.0
    eval_allowance_s: float = 240.0  # the scoring calls, after the export; the child waits for them
    workers: int = 1
    budget: Budget = field(default_factory=Budget)
    max_code_bytes: int = MAX_CODE_BYTES
    eval_max_rows: int = 512  # rows per scoring call: [512, 256, 257] float32 logits = 135 MB
    call_timeout_s: float = 180.0
    unisolated: bool = False  # run without bubblewrap (loud; only where it cannot run)
    record_seeds: tuple[int, ...] = (42, 1337, 2025)  # a record re-runs its code on these (TORCH_SEED)
    records_dir: Path | None = None  # where records are assembled [default: <state_dir>/records]
    # Nice +10: the API answers pollers at once while a run trains on every core (bench/bench_service.py).
    child_limits: Limits = field(default_factory=lambda: Limits(memory_bytes=8 * 1024**3, disk_bytes=2 * 1024**3,
                                                               output_bytes=16 * 1024**2, niceness=10))

    @property
    def run_limit_s(self) -> float:
        """The wall-clock limit of one run's child: training, grace, then the scoring it waits for."""
        return self.time_budget_s + self.grace_s + self.eval_allowance_s

    @property
    def record_root(self) -> Path:
        return self.records_dir or self.state_dir / "records"

    @property
    def database(self) -> Path:
        return self.state_dir / "service.db"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

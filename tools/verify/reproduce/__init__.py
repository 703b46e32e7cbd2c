"""Re-run a record's own `train_gpt.py`, seed by seed, and compare what it gets with what the record claims.

Static checks trust the logs; reproduction does not. Each seed runs from a private copy of the record folder
(never in place, without the shipped logs and artifacts, so the score must come from training), with the track's
dataset and environment, in the sandbox (own process group, hard time limit, no network where the platform
allows it). The log the child writes is parsed with the same parser `verify record` uses, its caps are checked
again on the reproduced run (train time, eval time, artifact file + code bytes), it must embed the very script
that ran, and its score must land within the track's tolerance of the claim (or the claimed seed spread, if
larger). Welch's t-test of claimed vs reproduced seeds is reported, not judged: with three seeds it is weak.

Entry point: `reproduce_record(folder, ...) -> ReproductionResult` (check id `reproduction`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import shutil
import stat
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tools.records import paths
from tools.records.logparse import parse_log
from tools.records.model import CheckResult, ParsedLog, Record, RecordError, Report, Status, Track
from tools.records.record import load_record
from tools.records.rules import artifact_cap_problem, counted_files, submission_bytes, time_cap_verdict
from tools.records.tracks import load_tracks
from tools.verify.sandbox import Limits, SandboxResult, network_namespace_prefix, run_sandboxed

CHECK_ID = "reproduction"
DEFAULT_MARGIN_S = 120.0  # start-up (imports, data loading) and serialization on top of the train + eval caps
ARTIFACT_NAME = "final_model.int8.ptz"  # contract §3: <ARTIFACT_DIR>/final_model.int8.ptz
MAX_LOG_BYTES = 64 * 1024**2  # what --logs-dir copies out of the sandbox
MAX_COPY_BYTES = 512 * 1024**2  # a record is code + a few logs; anything bigger is not copied into the sandbox
TAIL_LINES_IN_MESSAGE = 5
# Training: many threads per process (torchrun ranks x intra-op threads), checkpoints and compile caches. Where GPU
# devices are present the sandbox lifts the address-space limit (CUDA reserves terabytes of it).
REPRODUCE_LIMITS = Limits(memory_bytes=32 * 1024**3, max_processes=8192, file_bytes=8 * 1024**3,
                          disk_bytes=32 * 1024**3, tmp_bytes=4 * 1024**3, output_bytes=512 * 1024**2)
# Shipped results stay out of the private copy: the reproduced score has to come from training, not from them.
_SHIPPED_RESULTS = re.compile(r"^(train_seed\d+.*\.log|final_model_seed\d+.*)$")
_SEED_IN_LOG_NAME = re.compile(r"train_seed(\d+)")

# Run in the child (python -I: no record files on sys.path) before torchrun: an empty network namespace has its
# loopback down, and torchrun's rendezvous and the gloo/NCCL bootstrap need 127.0.0.1. Bringing `lo` up gives
# the ranks each other and still nothing outside the machine.
_LOOPBACK_UP_THEN_EXEC = """\
import fcntl, os, socket, struct, sys
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0))[:18])[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))
except OSError as e:
    print(f"reproduce: could not bring the loopback interface up ({e}); torchrun may fail", file=sys.stderr)
os.execv(sys.argv[1], sys.argv[1:])
"""


# --- results -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRun:
    """One reproduced seed: how the child ended, what its log says, and the verdict on it."""

    seed: int
    status: Status  # pass / fail / warn (nothing claimed to compare with)
    problems: tuple[str, ...]  # why it is not a pass, one sentence each, naming the numbers
    claimed_bpb: float | None
    reproduced_bpb: float | None
    delta_bpb: float | None  # reproduced - claimed
    returncode: int | None
    timed_out: bool
    wall_s: float
    time_limit_s: float
    train_time_ms: float | None = None
    eval_time_ms: float | None = None
    artifact_file_bytes: int | None = None  # size of the artifact file the run wrote
    code_bytes: int | None = None  # the script's size (the other half of the submission size)
    logged_bytes_total: int | None = None
    steps: int | None = None
    run_id: str = ""
    kept_log: str | None = None  # where the reproduced log was copied, when asked to keep it
    output_tail: str = ""

    @property
    def bytes_total(self) -> int | None:
        if self.artifact_file_bytes is None or self.code_bytes is None:
            return None
        return self.artifact_file_bytes + self.code_bytes


@dataclass(frozen=True)
class ReproductionResult:
    record: str
    track_id: str
    nproc: int
    seeds: tuple[int, ...]
    runs: tuple[SeedRun, ...]
    claimed: Mapping[int, float]  # every claimed seed's val_bpb
    claims_from: str  # "submission.json" or "logs"
    tolerance_bpb: float
    tolerance_source: str
    welch: Mapping[str, Any]
    time_limit_s: float
    network_isolated: bool
    network_note: str
    check: CheckResult
    tracking: Mapping[str, Any] = field(default_factory=dict)
    skipped_files: tuple[str, ...] = ()  # record files not copied into the sandbox, and why
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.check.status != "fail"

    def report(self) -> Report:
        return Report(record=self.record, checks=[self.check], stats=self.stats())

    def stats(self) -> dict[str, Any]:
        return {
            "track": self.track_id,
            "nproc": self.nproc,
            "seeds": list(self.seeds),
            "claims_from": self.claims_from,
            "claimed": {str(seed): value for seed, value in self.claimed.items()},
            "tolerance_bpb": self.tolerance_bpb,
            "tolerance_source": self.tolerance_source,
            "time_limit_s": self.time_limit_s,
            "welch": dict(self.welch),
            "network": {"isolated": self.network_isolated, "note": self.network_note},
            "tracking": dict(self.tracking),
            "skipped_files": list(self.skipped_files),
            "warnings": list(self.warnings),
            "runs": [_run_json(run) for run in self.runs],
        }

    def to_json(self) -> dict[str, Any]:
        return self.report().to_json()


def _run_json(run: SeedRun) -> dict[str, Any]:
    out = dataclasses.asdict(run)
    out["problems"] = list(run.problems)
    out["bytes_total"] = run.bytes_total
    return out


class SeedProgressSink(Protocol):
    def update(self, line: str) -> None: ...
    def close(self, run: SeedRun) -> None: ...


# Called once per seed before it starts: (seed, index, count, time_limit_s, train_cap_s) -> a sink for its output.
ProgressFactory = Callable[..., SeedProgressSink]


# --- pure pieces ---------------------------------------------------------------------------------------------------


def plan_seeds(claimed: Sequence[int], seeds: Sequence[int] | None = None, n: int | None = None) -> tuple[int, ...]:
    """The seeds to run: `seeds` as given, else the first `n` claimed seeds, else every claimed seed."""
    if seeds is not None and n is not None:
        raise ValueError("give either explicit seeds or a count, not both")
    if seeds is not None:
        chosen = tuple(int(s) for s in seeds)
        if not chosen:
            raise ValueError("no seeds given")
        duplicates = sorted({s for s in chosen if chosen.count(s) > 1})
        if duplicates:
            raise ValueError(f"seed {duplicates[0]} given twice")
        return chosen
    if not claimed:
        raise ValueError("the record claims no seeds; pass the seeds to run explicitly")
    if n is None:
        return tuple(claimed)
    if n < 1:
        raise ValueError(f"the seed count must be at least 1, got {n}")
    if n > len(claimed):
        raise ValueError(f"asked for {n} seeds but the record claims only {len(claimed)} ({_seed_list(claimed)})")
    return tuple(claimed[:n])


def claimed_scores(record: Record) -> tuple[dict[int, float], str]:
    """Each claimed seed's val_bpb, in claim order: from submission.json's seed results, else the shipped logs."""
    submission = record.submission
    if submission is not None and submission.seed_results:
        order = list(submission.seeds) + [s for s in submission.seed_results if s not in submission.seeds]
        scores = {
            seed: float(submission.seed_results[seed].val_bpb)
            for seed in order
            if seed in submission.seed_results and submission.seed_results[seed].val_bpb is not None
        }
        if scores:
            return scores, "submission.json"
    from_logs: dict[int, float] = {}
    for name in sorted(record.logs):
        parsed = record.logs[name]
        seed = parsed.seed if parsed.seed is not None else _seed_from_log_name(name)
        if seed is not None and parsed.val_bpb is not None and seed not in from_logs:
            from_logs[seed] = float(parsed.val_bpb)
    # The submission's seed order when it lists one, else ascending (not file-name order: "1337" < "42").
    order = [s for s in (submission.seeds if submission is not None else ()) if s in from_logs]
    order += sorted(s for s in from_logs if s not in order)
    return {seed: from_logs[seed] for seed in order}, "logs"


def _seed_from_log_name(name: str) -> int | None:
    match = _SEED_IN_LOG_NAME.search(name)
    return int(match.group(1)) if match else None


def tolerance_for(track: Track, claimed_values: Sequence[float]) -> tuple[float, str]:
    """The track's tolerance, or the claimed seeds' sample std when that is larger (noise the claim itself shows)."""
    tolerance, source = track.reproduce_tolerance_bpb, f"track {track.id} reproduce_tolerance_bpb"
    if len(claimed_values) >= 2:
        spread = statistics.stdev(claimed_values)
        if spread > tolerance:
            tolerance, source = spread, f"sample std of the {len(claimed_values)} claimed seeds"
    return tolerance, source


def welch_test(claimed: Sequence[float], reproduced: Sequence[float]) -> dict[str, Any]:
    """Welch's two-sided t-test of claimed vs reproduced scores (reported, not judged)."""
    out: dict[str, Any] = {"test": "welch_t_two_sided", "n_claimed": len(claimed), "n_reproduced": len(reproduced),
                           "t": None, "p": None}
    if len(claimed) < 2 or len(reproduced) < 2:
        out["note"] = (f"cannot be computed: needs at least 2 seeds on each side "
                       f"(claimed {len(claimed)}, reproduced {len(reproduced)})")
        return out
    import warnings

    from scipy import stats  # imported here: the rest of the module must stay light

    with warnings.catch_warnings():  # identical samples (a deterministic rerun) are normal here, not a hazard
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(list(claimed), list(reproduced), equal_var=False)
    t, p = float(result.statistic), float(result.pvalue)
    if not (math.isfinite(t) and math.isfinite(p)):
        out["note"] = "undefined: both samples have zero variance" + (
            " and equal means" if statistics.fmean(claimed) == statistics.fmean(reproduced) else "")
        return out
    out.update(t=t, p=p, note=f"claimed mean {statistics.fmean(claimed):.6f} vs reproduced mean "
                                 f"{statistics.fmean(reproduced):.6f}")
    return out


def time_limit_for(track: Track, margin_s: float = DEFAULT_MARGIN_S, override_s: float | None = None) -> float:
    """Per-seed wall-clock limit: the track's train + eval caps plus a margin (or an explicit override)."""
    if override_s is not None:
        if override_s <= 0:
            raise ValueError(f"the time limit must be positive, got {override_s}")
        return float(override_s)
    if track.train_time_cap_s is None or track.eval_time_cap_s is None:
        raise ValueError(f"track {track.id} has no time caps to derive a limit from; pass an explicit time limit")
    if margin_s < 0:
        raise ValueError(f"the margin must be >= 0, got {margin_s}")
    return track.train_time_cap_s + track.eval_time_cap_s + margin_s


def choose_nproc(track: Track, nproc: int | None) -> int:
    """--nproc, else the track's own count when CI can run the track (the CPU track); GPU tracks must say it."""
    if nproc is not None:
        if nproc < 1:
            raise ValueError(f"--nproc must be at least 1, got {nproc}")
        return nproc
    if track.reproducible_in_ci:
        return track.nproc
    raise ValueError(f"track {track.id} runs on {track.hardware}; pass --nproc (the track uses {track.nproc} processes)")


def launch_argv(nproc: int, *, loopback_up: bool = False) -> list[str]:
    """How the child starts: plain python for one process, torchrun (its module form, same interpreter) for more."""
    if nproc == 1:
        return ["python", "train_gpt.py"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "train_gpt.py"]
    if loopback_up:
        return [sys.executable, "-I", "-c", _LOOPBACK_UP_THEN_EXEC, *torchrun]
    return torchrun


def seed_env(track: Track, *, seed: int, data_path: Path, run_id: str, artifact_dir: Path, nproc: int,
             network_isolated: bool, temp_dir: Path | None = None) -> dict[str, str]:
    """The child's environment: the track's table, then what the judge fixes (the judge's values win).

    `temp_dir` becomes the child's TMPDIR, inside the private workspace, so what torch and friends leave in the
    temporary folder (compile caches, ...) goes away with the workspace instead of piling up in the judge's."""
    env = dict(track.env)
    env.update(SEED=str(seed), DATA_PATH=str(data_path), RUN_ID=run_id, ARTIFACT_DIR=str(artifact_dir),
               TRACK=track.id)
    if temp_dir is not None:
        env["TMPDIR"] = str(temp_dir)
    if nproc > 1 and network_isolated:  # the only interface in an empty namespace
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        env.setdefault("NCCL_SOCKET_IFNAME", "lo")
    return env


def prepare_hint(dataset: str) -> str:
    """The command that builds a dataset folder, for the error message when it is missing."""
    base, _, tokenizer = dataset.rpartition("_")
    if base == "shakespeare":
        return "python data/prepare.py shakespeare" + (" --tokenizer byte" if tokenizer == "byte" else "")
    if tokenizer.startswith("sp") and tokenizer[2:].isdigit() and base:
        return f"python data/prepare.py docs --jsonl <{base}.jsonl> --vocab-size {tokenizer[2:]}"
    return "python data/prepare.py --help"


def _seed_list(seeds: Iterable[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def _tail(text: str, lines: int = TAIL_LINES_IN_MESSAGE, max_chars: int = 600) -> str:
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= max_chars else "..." + joined[-max_chars:]


def judge_seed(
    *,
    seed: int,
    track: Track,
    sandbox: SandboxResult,
    time_limit_s: float,
    parsed: ParsedLog | None,
    log_problem: str | None,
    artifact_file_bytes: int | None,
    artifact_problem: str | None,
    script: bytes,
    claimed_bpb: float | None,
    tolerance_bpb: float,
    run_id: str = "",
    extra_bytes: int = 0,
) -> SeedRun:
    """The verdict on one reproduced seed, from data only (the run has already happened)."""
    who = f"seed {seed}"
    finished = not sandbox.timed_out and sandbox.returncode == 0
    problems: list[str] = []
    if sandbox.timed_out:
        problems.append(f"{who}: killed at the {time_limit_s:g} s time limit; last output: "
                        f"{_tail(sandbox.output_tail) or '(none)'}")
    elif sandbox.returncode != 0:
        problems.append(f"{who}: crashed (exit code {sandbox.returncode}); last output: "
                        f"{_tail(sandbox.output_tail) or '(none)'}")
    elif parsed is None:
        problems.append(f"{who}: {log_problem or 'the run wrote no log'}")
    else:  # judged only when the run finished: a killed run's half-written log would only add noise
        problems += _log_problems(seed, parsed, track, script, artifact_file_bytes, artifact_problem, extra_bytes)

    reproduced = parsed.val_bpb if finished and parsed is not None else None
    delta = None if reproduced is None or claimed_bpb is None else reproduced - claimed_bpb
    if delta is not None and abs(delta) > tolerance_bpb:
        problems.append(f"{who}: reproduced val_bpb {reproduced:.6f} vs claimed {claimed_bpb:.6f} "
                        f"(|delta| {abs(delta):.6f} > tolerance {tolerance_bpb:.6f})")
    status: Status = "fail" if problems else "pass"
    if status == "pass" and claimed_bpb is None:
        status = "warn"
        problems.append(f"{who}: reproduced val_bpb {reproduced:.6f}, but the record claims nothing for this seed "
                        "to compare with")
    values = {}
    if parsed is not None:
        values = dict(train_time_ms=parsed.train_time_ms, eval_time_ms=parsed.eval_time_ms,
                      logged_bytes_total=parsed.bytes_total, steps=parsed.steps)
    return SeedRun(
        seed=seed, status=status, problems=tuple(problems), claimed_bpb=claimed_bpb, reproduced_bpb=reproduced,
        delta_bpb=delta, returncode=sandbox.returncode, timed_out=sandbox.timed_out, wall_s=round(sandbox.wall_s, 3),
        time_limit_s=time_limit_s, artifact_file_bytes=artifact_file_bytes, code_bytes=len(script), run_id=run_id,
        output_tail=sandbox.output_tail, **values,
    )


def _log_problems(seed: int, parsed: ParsedLog, track: Track, script: bytes, artifact_file_bytes: int | None,
                  artifact_problem: str | None, extra_bytes: int = 0) -> list[str]:
    """What is wrong with a finished run's log and artifact: score, seed, code, caps."""
    who = f"seed {seed}"
    problems: list[str] = []
    if parsed.val_bpb is None:
        problems.append(f"{who}: the reproduced log has no final score line (final_..._exact val_bpb)")
    if parsed.seed is not None and parsed.seed != seed:
        problems.append(f"{who}: the reproduced log says seed {parsed.seed}; the script ignored SEED")
    if parsed.code is None:
        problems.append(f"{who}: the reproduced log does not embed its source code")
    elif parsed.code.encode("utf-8") != script:
        problems.append(f"{who}: the reproduced log embeds different code (sha256 "
                        f"{hashlib.sha256(parsed.code.encode('utf-8')).hexdigest()[:12]}) than the record's "
                        f"train_gpt.py (sha256 {hashlib.sha256(script).hexdigest()[:12]})")
    if parsed.code_sha256 is not None and parsed.code_sha256 != hashlib.sha256(script).hexdigest():
        problems.append(f"{who}: the reproduced log reports code_sha256 {parsed.code_sha256[:12]}, the script's is "
                        f"{hashlib.sha256(script).hexdigest()[:12]}")
    problems += _time_cap_problems(who, "train_time", parsed.train_time_ms, track.train_time_cap_s,
                                   track.train_time_grace_s)
    problems += _time_cap_problems(who, "eval_time", parsed.eval_time_ms, track.eval_time_cap_s)
    if artifact_problem is not None:
        problems.append(f"{who}: {artifact_problem}")
    else:
        assert artifact_file_bytes is not None
        total = submission_bytes(artifact_file_bytes, len(script), extra_bytes)
        shipped = f" + other shipped files {extra_bytes:,}" if extra_bytes else ""
        over = artifact_cap_problem(total, track.artifact_cap_bytes, f"{who}: submission size (artifact "
                                    f"{artifact_file_bytes:,} + code {len(script):,}{shipped})")
        if over is not None:
            problems.append(over)
        if parsed.model_bytes is not None and parsed.model_bytes != artifact_file_bytes:
            problems.append(f"{who}: the log says the model is {parsed.model_bytes:,} bytes, the artifact file has "
                            f"{artifact_file_bytes:,}")
    if parsed.bytes_total is not None:
        over = artifact_cap_problem(parsed.bytes_total, track.artifact_cap_bytes, f"{who}: logged total submission size")
        if over is not None:
            problems.append(over)
    return problems


def shipped_extra_bytes(record: Record) -> int:
    """Bytes of the files the record ships beyond its script, logs, artifacts and docs (they count toward the cap
    exactly as the static `artifact_bytes` check counts them)."""
    total = 0
    names = counted_files(record.files, script="train_gpt.py", logs=[*record.logs, *record.log_errors],
                          artifacts=[path.name for path in record.artifacts.values()], symlinks=record.symlinks)
    for name in names:
        try:
            total += (record.path / name).lstat().st_size
        except OSError:
            continue
    return total


def _time_cap_problems(who: str, name: str, value_ms: float | None, cap_s: float | None,
                       grace_s: float = 0.0) -> list[str]:
    """A reproduced run is held to the same time rule as the static check (tools.records.rules.time_cap_verdict):
    an overshoot within the ruleset's grace is not a failure."""
    if cap_s is None:
        return []
    if value_ms is None:
        return [f"{who}: the reproduced log has no {name} line, so its {cap_s:g} s cap cannot be checked"]
    if time_cap_verdict(value_ms, cap_s, grace_s) == "fail":
        grace = f" (grace {grace_s:g} s)" if grace_s else ""
        return [f"{who}: {name} {value_ms / 1000:.3f} s > cap {cap_s:g} s{grace}"]
    return []


def summarize(runs: Sequence[SeedRun], tolerance_bpb: float, *, evidence: Mapping[str, Any]) -> CheckResult:
    """The `reproduction` check: fail when any seed failed; warn when a seed had nothing to compare with."""
    failed = [run for run in runs if run.status == "fail"]
    if failed:
        message = "; ".join(problem for run in failed for problem in run.problems)
        return CheckResult(CHECK_ID, "fail", f"{len(failed)}/{len(runs)} seeds failed: {message}", evidence)
    compared = [run for run in runs if run.delta_bpb is not None]
    unclaimed = [run for run in runs if run.status == "warn"]
    parts = []
    if compared:
        worst = max(compared, key=lambda run: abs(run.delta_bpb or 0.0))
        parts.append(f"{len(compared)}/{len(runs)} seeds reproduced within {tolerance_bpb:.4f} bpb of their claims "
                     f"(largest |delta| {abs(worst.delta_bpb or 0.0):.6f} at seed {worst.seed})")
    if unclaimed:
        parts.append("no claim to compare for seed " + _seed_list(run.seed for run in unclaimed))
        return CheckResult(CHECK_ID, "warn", "; ".join(parts), evidence)
    return CheckResult(CHECK_ID, "pass", "; ".join(parts), evidence)


# --- effects: copying, running, reading back ----------------------------------------------------------------------


def copy_record_privately(source: Path, destination: Path, *, max_bytes: int = MAX_COPY_BYTES) -> list[str]:
    """Copy a record folder's regular files into `destination` (created); returns what was left out and why.

    Never follows a symlink (the record is hostile: a link could point anywhere), leaves out the shipped logs and
    artifacts (the run must produce its own), and stops at `max_bytes` in total.
    """
    skipped: list[str] = []
    copied_bytes = 0
    destination.mkdir(parents=True)
    for folder, dirs, files in os.walk(source, followlinks=False):
        relative_folder = Path(folder).relative_to(source)
        for name in sorted(dirs):
            if os.path.islink(os.path.join(folder, name)):
                skipped.append(f"{relative_folder / name}: a symlink, not followed")
                dirs.remove(name)
            else:
                (destination / relative_folder / name).mkdir()
        for name in sorted(files):
            relative = relative_folder / name
            info = os.lstat(os.path.join(folder, name))
            if stat.S_ISLNK(info.st_mode):
                skipped.append(f"{relative}: a symlink, not followed")
            elif not stat.S_ISREG(info.st_mode):
                skipped.append(f"{relative}: not a regular file")
            elif relative_folder == Path(".") and _SHIPPED_RESULTS.match(name):
                skipped.append(f"{relative}: a shipped result; the run must produce its own")
            elif copied_bytes + info.st_size > max_bytes:
                skipped.append(f"{relative}: over the {max_bytes:,}-byte copy limit")
            else:
                data, _ = paths.read_regular_file(os.path.join(folder, name), max_bytes, follow_symlinks=False)
                (destination / relative).write_bytes(data)
                copied_bytes += len(data)
    return skipped


def _read_reproduced_log(path: Path) -> tuple[ParsedLog | None, str | None]:
    """Parse the log the run wrote with the parser `verify record` uses (never through a symlink)."""

    if not path.exists() and not path.is_symlink():
        return None, f"the run wrote no log at logs/{path.name}"
    try:
        return parse_log(path, follow_symlinks=False), None
    except RecordError as problem:
        return None, f"the reproduced log logs/{path.name} is unreadable: {problem.message}"


def _artifact_size(path: Path) -> tuple[int | None, str | None]:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, f"the run wrote no artifact at ARTIFACT_DIR/{path.name}"
    if not stat.S_ISREG(info.st_mode):
        return None, f"ARTIFACT_DIR/{path.name} is not a regular file"
    return info.st_size, None


def _keep_log(source: Path, logs_dir: Path, seed: int) -> str:
    """Copy a reproduced log out of the sandbox copy, atomically (temp file + rename)."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    target = logs_dir / f"reproduced_seed{seed}.log"
    data, _ = paths.read_regular_file(source, MAX_LOG_BYTES, follow_symlinks=False)
    paths.write_atomic(target, data)
    return str(target)


@dataclass
class _SeedOutcome:
    run: SeedRun
    log_path: Path | None  # a finished run's log, inside the private copy (gone after the reproduction)
    network_isolated: bool  # as the sandbox reports it for this run
    network_note: str


def _run_one_seed(*, seed: int, index: int, count: int, record_folder: Path, workspace: Path, track: Track,
                  data_path: Path, nproc: int, time_limit_s: float, script: bytes, claimed_bpb: float | None,
                  tolerance_bpb: float, isolate_network: bool, network_isolated: bool,
                  progress: ProgressFactory | None, logs_dir: Path | None,
                  extra_bytes: int = 0) -> tuple[_SeedOutcome, list[str]]:
    copy = workspace / f"seed{seed}" / record_folder.name
    skipped = copy_record_privately(record_folder, copy)
    temp_dir = workspace / f"seed{seed}" / "tmp"
    temp_dir.mkdir()
    shutil.rmtree(copy / "logs", ignore_errors=True)  # a shipped logs/ folder must not pose as the run's own log
    run_id = f"reproduce_seed{seed}_{uuid.uuid4().hex[:8]}"
    artifact_dir = copy / "logs" / run_id
    env = seed_env(track, seed=seed, data_path=data_path, run_id=run_id, artifact_dir=artifact_dir, nproc=nproc,
                   network_isolated=network_isolated, temp_dir=temp_dir)
    sink = progress(seed, index, count, time_limit_s, track.train_time_cap_s) if progress else None
    (copy / "logs").mkdir()
    # The child reads its copy and the dataset, writes only logs/ (its log and ARTIFACT_DIR) and its TMPDIR; the
    # sandbox's own network namespace has its loopback up, so torchrun needs no help.
    sandbox = run_sandboxed(launch_argv(nproc), cwd=copy, timeout_s=time_limit_s, env=env,
                            on_line=sink.update if sink else None, isolate_network=isolate_network,
                            inputs=[data_path], writable=[copy / "logs", temp_dir], limits=REPRODUCE_LIMITS, gpu=True)
    log_path = copy / "logs" / f"{run_id}.txt"
    parsed, log_problem = _read_reproduced_log(log_path)
    artifact_bytes, artifact_problem = _artifact_size(artifact_dir / ARTIFACT_NAME)
    run = judge_seed(seed=seed, track=track, sandbox=sandbox, time_limit_s=time_limit_s, parsed=parsed,
                     log_problem=log_problem, artifact_file_bytes=artifact_bytes, artifact_problem=artifact_problem,
                     script=script, claimed_bpb=claimed_bpb, tolerance_bpb=tolerance_bpb, run_id=run_id,
                     extra_bytes=extra_bytes)
    if logs_dir is not None and parsed is not None:
        run = dataclasses.replace(run, kept_log=_keep_log(log_path, logs_dir, seed))
    if sink is not None:
        sink.close(run)
    finished = parsed is not None and run.returncode == 0 and not run.timed_out
    return _SeedOutcome(run, log_path if finished else None, sandbox.network_isolated, sandbox.note), skipped


def _load(folder: Path, records_root: Path | None) -> Record:

    return load_record(folder, records_root=records_root)


def reproduce_record(
    folder: str | Path,
    seeds: Sequence[int] | None = None,
    n: int | None = None,
    nproc: int | None = None,
    *,
    tracks: Mapping[str, Track] | None = None,
    records_root: str | Path | None = None,
    datasets_root: str | Path | None = None,
    margin_s: float = DEFAULT_MARGIN_S,
    time_limit_s: float | None = None,
    isolate_network: bool = True,
    progress: ProgressFactory | None = None,
    track_in_mlflow: bool = True,
    tracking_uri: str | None = None,
    logs_dir: str | Path | None = None,
    ingest: IngestLogs | None = None,
) -> ReproductionResult:
    """Re-run the record's train_gpt.py for each seed and judge the runs (see the module docstring).

    Raises RecordError (exit 2) for input that cannot be reproduced at all: an unreadable record, an unknown track,
    a missing dataset (the message names the command that prepares it), no script, bad seed choices.
    """
    folder = Path(folder)
    record = _load(folder, Path(records_root) if records_root is not None else None)
    if tracks is None:

        tracks = load_tracks(Path(records_root) / "tracks.toml" if records_root is not None else None)
    track = tracks.get(record.track_id)
    if track is None:
        raise RecordError(folder, f"unknown track {record.track_id!r} (known: {', '.join(sorted(tracks))})")
    if record.script_path is None:
        raise RecordError(folder, "no train_gpt.py to reproduce")
    try:
        script, truncated = paths.read_regular_file(record.script_path, MAX_COPY_BYTES, follow_symlinks=False)
    except (OSError, ValueError) as problem:
        raise RecordError(record.script_path, f"cannot read the script: {problem}") from None
    if truncated:
        raise RecordError(record.script_path, f"over {MAX_COPY_BYTES:,} bytes")

    claimed, claims_from = claimed_scores(record)
    warnings: list[str] = []
    if record.submission is None:
        warnings.append(f"submission.json unusable ({record.submission_error}); claims taken from the shipped logs")
    try:
        chosen = plan_seeds(list(claimed), seeds, n)
        limit = time_limit_for(track, margin_s, time_limit_s)
        processes = choose_nproc(track, nproc)
    except ValueError as problem:
        raise RecordError(folder, str(problem)) from None
    data_root = Path(datasets_root) if datasets_root is not None else paths.datasets_root()
    data_path = (data_root / track.dataset).resolve()
    if not (data_path / "manifest.json").is_file():
        raise RecordError(data_path, f"dataset {track.dataset} for track {track.id} is not prepared; run: "
                                     f"{prepare_hint(track.dataset)}")

    tolerance, tolerance_source = tolerance_for(track, list(claimed.values()))
    prefix, network_note = network_namespace_prefix() if isolate_network else ((), "network left on by request")
    network_isolated = bool(prefix)

    outcomes: list[_SeedOutcome] = []
    skipped: list[str] = []
    tracking: dict[str, Any] = {"enabled": track_in_mlflow and ingest is not None}
    keep_dir = Path(logs_dir) if logs_dir is not None else None
    with tempfile.TemporaryDirectory(prefix="pg-reproduce-") as workspace:
        for index, seed in enumerate(chosen):
            outcome, skipped_here = _run_one_seed(
                seed=seed, index=index, count=len(chosen), record_folder=record.path, workspace=Path(workspace),
                track=track, data_path=data_path, nproc=processes, time_limit_s=limit, script=script,
                claimed_bpb=claimed.get(seed), tolerance_bpb=tolerance, isolate_network=isolate_network,
                network_isolated=network_isolated, progress=progress, logs_dir=keep_dir,
                extra_bytes=shipped_extra_bytes(record))
            outcomes.append(outcome)
            skipped = skipped or skipped_here  # the same files each time; report them once
        if track_in_mlflow and ingest is not None:
            logged = {o.run.seed: o.log_path for o in outcomes if o.log_path is not None}
            tracking.update(_track_reproduction(logged, record=_display_path(record.path), track_id=track.id,
                                                tracking_uri=tracking_uri, ingest=ingest))
            if tracking.get("warning"):
                warnings.append(str(tracking["warning"]))

    runs = tuple(o.run for o in outcomes)
    # Report what the sandbox did, not what was planned: every run must have been cut off for "isolated".
    network_isolated = all(o.network_isolated for o in outcomes)
    network_note = next((o.network_note for o in outcomes if not o.network_isolated), outcomes[0].network_note)
    reproduced_values = [r.reproduced_bpb for r in runs if r.reproduced_bpb is not None]  # finished runs only
    welch = welch_test(list(claimed.values()), reproduced_values)
    evidence = {"tolerance_bpb": tolerance, "welch": welch, "network_isolated": network_isolated,
                "seeds": {str(r.seed): {"claimed": r.claimed_bpb, "reproduced": r.reproduced_bpb,
                                        "status": r.status} for r in runs}}
    check = summarize(runs, tolerance, evidence=evidence)
    return ReproductionResult(
        record=_display_path(record.path), track_id=track.id, nproc=processes, seeds=chosen, runs=runs,
        claimed=claimed, claims_from=claims_from, tolerance_bpb=tolerance, tolerance_source=tolerance_source,
        welch=welch, time_limit_s=limit, network_isolated=network_isolated, network_note=network_note, check=check,
        tracking=tracking, skipped_files=tuple(skipped), warnings=tuple(warnings),
    )


def _display_path(path: Path) -> str:
    """The record as `records/<track>/<name>` when it lives in the repository, else its absolute path."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(paths.repo_root()))
    except ValueError:
        return str(resolved)


# --- MLflow ----------------------------------------------------------------------------------------------------------

# Logs the reproduced runs (seed -> log path) with tags; returns their run ids. The judge does not write to the
# product's stores itself: the command line passes tools.submit.reproductions.ingest_reproduced_logs.
IngestLogs = Callable[..., Sequence[str]]


def _track_reproduction(logs: Mapping[int, Path], *, record: str, track_id: str, tracking_uri: str | None,
                        ingest: IngestLogs) -> dict[str, Any]:
    """Log the reproduced runs to MLflow, tagged with the record; a failure is a warning, never the verdict."""
    if not logs:
        return {"run_ids": [], "note": "no reproduced log to track"}
    tags = {"reproduction_of": record, "reproduction": "true"}
    try:
        run_ids = list(ingest(logs, tags=tags, track_id=track_id, tracking_uri=tracking_uri))
    except Exception as problem:  # MLflow down, store locked, module missing: the verdict stands regardless
        return {"run_ids": [], "warning": f"MLflow logging failed: {type(problem).__name__}: {problem}"}
    return {"run_ids": run_ids, "tags": tags}

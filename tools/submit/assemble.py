"""Assemble a record folder from training logs: script, logs, artifacts, submission.json, README, curves.

Every number in submission.json is computed from the logs (means, sample std, per-seed results), and the script
is the source the logs embed, so the folder says exactly what was run. The folder is built in a hidden staging
folder inside `records/<track>/` (same file system, so accepting it is one atomic rename, and `load_record`
sees the right track as its parent); tools.submit.accept judges it there and renames it into place or moves it
to `logs/rejected/`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shlex
import shutil
import statistics
import tempfile
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.records.logparse import parse_log
from tools.records.model import ParsedLog, RecordError, SeedResult, Submission, Track
from tools.records.paths import records_root as default_records_root
from tools.records.paths import repo_root
from tools.records.schema import submission_from_dict, submission_to_dict
from tools.records.tracks import load_tracks
from tools.submit.plots import render_training_curves

STAGING_PREFIX = ".staging-"
STALE_STAGING_S = 3600.0  # a submit record takes seconds; an hour-old staging folder was left by an interrupted one
SCRIPT_NAME = "train_gpt.py"
CURVES_NAME = "curves.png"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIGITS = 8  # the precision of the logs' `_exact` score lines


@dataclass(frozen=True)
class SeedLog:
    """One input log, read and accepted for assembly."""

    source: Path
    parsed: ParsedLog
    seed: int
    artifact: Path | None  # the trainer's final_model.int8.ptz found next to the log

    @property
    def log_name(self) -> str:
        return f"train_seed{self.seed}.log"

    @property
    def artifact_name(self) -> str:
        return f"final_model_seed{self.seed}.int8.ptz"


def slugify(name: str) -> str:
    """`"Int6 QAT + Muon!"` -> `"int6-qat-muon"`: ASCII letters and digits joined by single hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")


def record_folder_name(date: dt.date, name: str) -> str:
    slug = slugify(name)
    if not slug:
        raise RecordError("--name", f"{name!r} has no letters or digits to name a folder with")
    return f"{date.isoformat()}_{slug}"


def find_artifact(log_path: Path, run_id: str | None) -> Path | None:
    """Per the contract the trainer writes <log folder>/<RUN_ID>/final_model.int8.ptz (RUN_ID = the log's stem)."""
    for folder_name in dict.fromkeys(n for n in (run_id, log_path.stem) if n):
        if folder_name in (".", "..") or "/" in folder_name:
            continue
        candidate = log_path.parent / folder_name / "final_model.int8.ptz"
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


def _required_from_log(log: ParsedLog) -> list[tuple[str, object]]:
    # submission.json schema 1 requires each of these per seed.
    return [
        ("steps (`step:N/M` lines)", log.steps),
        ("train_time (`train_time:Tms`)", log.train_time_ms),
        ("eval_time (`eval_time:Tms`)", log.eval_time_ms),
        ("model size (`Serialized model ...: N bytes`)", log.model_bytes),
    ]


def read_seed_logs(paths: Sequence[str | Path]) -> list[SeedLog]:
    """Parse the logs; RecordError (one line, naming the log) for anything that cannot make a record."""

    if not paths:
        raise RecordError("--from-logs", "no logs given")
    seed_logs: list[SeedLog] = []
    seen: dict[int, Path] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise RecordError(path, "no such log file")
        parsed = parse_log(path)
        if parsed.code is None:
            raise RecordError(path, "no embedded source (the script's code, then a line of 100 '=')")
        if parsed.val_bpb is None or parsed.val_loss is None:
            raise RecordError(path, "no score: no final `..._exact val_loss:X val_bpb:Y` line")
        if parsed.seed is None:
            raise RecordError(path, "no seed: no `run_id:... seed:N` line")
        lacking = [label for label, value in _required_from_log(parsed) if value is None]
        if lacking:
            raise RecordError(path, f"no {', '.join(lacking)} in the log; submission.json needs every seed's numbers")
        if parsed.seed in seen:
            raise RecordError(path, f"seed {parsed.seed} again (also in {seen[parsed.seed]}); one log per seed")
        seen[parsed.seed] = path
        seed_logs.append(SeedLog(path, parsed, parsed.seed, find_artifact(path, parsed.run_id)))
    return sorted(seed_logs, key=lambda s: s.seed)


def common_code(seed_logs: Sequence[SeedLog], script: str | Path | None = None) -> str:
    """The source every log embeds; RecordError naming the first log that differs (or a differing --script)."""
    reference = seed_logs[0]
    code = reference.parsed.code
    for other in seed_logs[1:]:
        if other.parsed.code != code:
            raise RecordError(other.source, f"embeds different code from {reference.source}; a record runs one script")
    if script is not None:
        script_bytes = Path(script).read_bytes()
        if script_bytes != code.encode("utf-8"):
            raise RecordError(script, f"differs from the code embedded in the logs ({reference.source})")
    return code


def _mean(values: Sequence[float]) -> float:
    return round(statistics.fmean(values), _DIGITS)


def build_submission(
    seed_logs: Sequence[SeedLog],
    code: str,
    *,
    track_id: str,
    name: str,
    author: str,
    github_id: str | None = None,
    blurb: str | None = None,
    date: dt.date,
) -> Submission:
    """submission.json's content (schema 1), every number taken from the logs."""
    code_bytes = len(code.encode("utf-8"))
    code_sha256 = hashlib.sha256(code.encode("utf-8")).hexdigest()
    results: dict[int, SeedResult] = {}
    for item in seed_logs:
        log = item.parsed
        bytes_total = log.bytes_total
        if bytes_total is None and log.model_bytes is not None:
            bytes_total = log.model_bytes + code_bytes
        results[item.seed] = SeedResult(
            seed=item.seed,
            val_bpb=log.val_bpb,
            val_loss=log.val_loss,
            steps=log.steps,
            train_time_s=None if log.train_time_ms is None else log.train_time_ms / 1000,
            eval_time_s=None if log.eval_time_ms is None else log.eval_time_ms / 1000,
            artifact_bytes=log.model_bytes,
            code_bytes=code_bytes,
            bytes_total=bytes_total,
            log=item.log_name,
            code_sha256=code_sha256,
        )
    bpbs = [r.val_bpb for r in results.values()]
    losses = [r.val_loss for r in results.values()]
    return Submission(
        schema=1,
        author=author,
        github_id=github_id or author,
        name=name,
        blurb=blurb or "",
        date=date,
        track=track_id,
        val_bpb=_mean(bpbs),
        val_loss=_mean(losses),
        val_bpb_std=round(statistics.stdev(bpbs), _DIGITS) if len(bpbs) > 1 else None,
        seeds=tuple(results),
        seed_results=results,
    )


def _portable(value: str) -> str:
    """An absolute path inside this repository as a path relative to its root (the README's commands run
    there); anything else unchanged."""
    if not value.startswith("/"):
        return value
    try:
        return Path(value).relative_to(repo_root()).as_posix()
    except ValueError:
        return value


def _seed_environment(item: SeedLog, track: Track | None) -> dict[str, str]:
    env: dict[str, str] = dict(track.env) if track is not None else {}
    env.update({k: _portable(v) for k, v in item.parsed.hyperparameters.items() if _ENV_NAME.match(k)})
    env["SEED"] = str(item.seed)
    if item.parsed.run_id:
        env["RUN_ID"] = item.parsed.run_id
    return env


def reproduce_commands(seed_logs: Sequence[SeedLog], track: Track | None) -> list[str]:
    """Shell lines: `export` of the environment every seed shared (the track's env, then the logged
    hyperparameters), then one launch line per seed with what differed (SEED, RUN_ID, ...)."""
    environments = [_seed_environment(item, track) for item in seed_logs]
    shared = {k: v for k, v in environments[0].items() if all(env.get(k) == v for env in environments[1:])}
    lines = []
    if shared:
        lines.append("export \\")
        assignments = [f"  {k}={shlex.quote(v)}" for k, v in sorted(shared.items())]
        lines += [line + " \\" for line in assignments[:-1]] + assignments[-1:]
    for item, env in zip(seed_logs, environments, strict=True):
        world_size = item.parsed.hardware.get("world_size", "1")
        launcher = "python train_gpt.py"
        if world_size.isdigit() and int(world_size) > 1:
            launcher = f"torchrun --standalone --nproc_per_node={world_size} train_gpt.py"
        own = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()) if k not in shared)
        lines.append(f"{own} {launcher}".strip())
    return lines


def _cell(value: object, fmt: str = "{}") -> str:
    return "?" if value is None else fmt.format(value)


def render_readme(submission: Submission, seed_logs: Sequence[SeedLog], track: Track | None) -> str:
    """A README skeleton: who and what, the per-seed results table, how to reproduce, what it ran on."""
    first = seed_logs[0].parsed
    github = f" (@{submission.github_id})" if submission.github_id else ""
    track_line = f"{track.title} (`{submission.track}`)" if track is not None else f"`{submission.track}`"
    std = _cell(submission.val_bpb_std, "{:.8f}")
    lines = [
        f"# {submission.name}",
        "",
        f"- Author: {submission.author}{github}",
        f"- Track: {track_line}",
        f"- Date: {submission.date.isoformat()}",
        f"- val_bpb: {submission.val_bpb:.8f} ± {std} (mean ± sample std over {len(seed_logs)} seeds)",
        "",
        submission.blurb or "_Describe the idea here: what changed from the previous record and why it helps._",
        "",
        "## Results",
        "",
        "| seed | val_bpb | val_loss | steps | train time (s) | eval time (s) | model bytes | total bytes | log |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for item in seed_logs:
        r = submission.seed_results[item.seed]
        lines.append(
            f"| {r.seed} | {_cell(r.val_bpb, '{:.8f}')} | {_cell(r.val_loss, '{:.8f}')} | {_cell(r.steps)} "
            f"| {_cell(r.train_time_s, '{:.3f}')} | {_cell(r.eval_time_s, '{:.3f}')} | {_cell(r.artifact_bytes)} "
            f"| {_cell(r.bytes_total)} | [{r.log}]({r.log}) |"
        )
    lines += [
        "",
        "![training curves](curves.png)",
        "",
        "## How to reproduce",
        "",
        "```bash",
        *reproduce_commands(seed_logs, track),
        "```",
        "",
        f"- Dataset: `{_cell(first.dataset_name)}` (manifest sha256 `{_cell(first.manifest_sha256)}`, "
        f"tokenizer sha256 `{_cell(first.tokenizer_sha256)}`)",
        f"- Hardware: {_describe(first.hardware)}",
        f"- Software: {_describe(first.software)}",
        f"- Code: `train_gpt.py`, {submission.seed_results[seed_logs[0].seed].code_bytes} bytes, "
        f"sha256 `{submission.seed_results[seed_logs[0].seed].code_sha256}`",
        "",
    ]
    return "\n".join(lines)


def _describe(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) if values else "not logged"


def submission_document(submission: Submission) -> str:
    """submission.json's text, checked by reading it back with the strict schema-1 reader."""
    import json


    try:
        document = submission_to_dict(submission)
    except ValueError as problem:
        raise RecordError("submission.json", str(problem)) from None
    submission_from_dict(document, "submission.json (as assembled)")
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_record_files(
    folder: Path, submission: Submission, seed_logs: Sequence[SeedLog], code: str, track: Track | None
) -> None:
    """Fill an empty folder with the record's files (CONTRACTS.md §6)."""

    (folder / SCRIPT_NAME).write_bytes(code.encode("utf-8"))
    for item in seed_logs:
        shutil.copyfile(item.source, folder / item.log_name)
        if item.artifact is not None:
            shutil.copyfile(item.artifact, folder / item.artifact_name)
    (folder / "submission.json").write_text(submission_document(submission), encoding="utf-8")
    (folder / "README.md").write_text(render_readme(submission, seed_logs, track), encoding="utf-8")
    curves = render_training_curves([s.parsed for s in seed_logs], f"{submission.name} ({submission.track})")
    (folder / CURVES_NAME).write_bytes(curves)


@dataclass(frozen=True)
class Draft:
    """An assembled record waiting for judgement: where it is now, and where it goes when accepted."""

    folder: Path  # records/<track>/.staging-XXXX
    destination: Path  # records/<track>/<YYYY-MM-DD>_<slug>
    submission: Submission
    created_track_folder: bool = False  # records/<track>/ did not exist (git keeps no empty folders)


def _load_track(track_id: str, records_root: Path) -> Track:

    tracks = load_tracks(records_root / "tracks.toml")
    if track_id not in tracks:
        raise RecordError("--track", f"unknown track {track_id!r}; tracks.toml has {', '.join(tracks)}")
    return tracks[track_id]


def remove_stale_staging(track_folder: Path, max_age_s: float = STALE_STAGING_S) -> list[Path]:
    """Delete staging folders an interrupted `submit record` left behind (older than `max_age_s`; a younger one may
    belong to a run still going). They are hidden, so no judge or board ever reads them meanwhile."""
    removed = []
    now = time.time()
    for entry in track_folder.glob(f"{STAGING_PREFIX}*"):
        try:
            stale = entry.is_dir() and not entry.is_symlink() and now - entry.lstat().st_mtime > max_age_s
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def assemble_draft(
    logs: Sequence[str | Path],
    track_id: str,
    name: str,
    author: str,
    *,
    github_id: str | None = None,
    blurb: str | None = None,
    date: dt.date | None = None,
    script: str | Path | None = None,
    records_root: Path | None = None,
) -> Draft:
    """Read and cross-check the logs, then build the record in a staging folder. RecordError -> nothing written."""

    records_root = Path(records_root or default_records_root())
    track = _load_track(track_id, records_root)
    date = date or dt.date.today()
    destination = records_root / track_id / record_folder_name(date, name)
    if destination.exists() or destination.is_symlink():
        raise RecordError(destination, "already exists; a record folder is never overwritten (choose another --name)")
    seed_logs = read_seed_logs(logs)
    code = common_code(seed_logs, script)
    submission = build_submission(
        seed_logs, code, track_id=track_id, name=name, author=author, github_id=github_id, blurb=blurb, date=date
    )
    submission_document(submission)  # fail before anything is written if schema 1 cannot hold it
    track_folder = records_root / track_id
    created_track_folder = not track_folder.is_dir()
    track_folder.mkdir(exist_ok=True)
    remove_stale_staging(track_folder)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=track_folder))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the record folder it becomes is not
        write_record_files(staging, submission, seed_logs, code, track)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_track_folder:
            track_folder.rmdir()
        raise
    return Draft(staging, destination, submission, created_track_folder)


def assemble_record(
    logs: Sequence[str | Path],
    track_id: str,
    name: str,
    author: str,
    **options,
) -> Path:
    """CONTRACTS §7: assemble a draft record folder from logs and return it (a staging folder; see assemble_draft)."""
    return assemble_draft(logs, track_id, name, author, **options).folder

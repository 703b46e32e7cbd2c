"""From service runs to a record: the runs of one submitted `train.py` on a track's seeds, assembled into a record
folder that the judge (tools.verify.checks.verdict.verify_record) judges like any other.

    records/track_service_bytes/<YYYY-MM-DD>_<slug>/
      train.py                the submitted code, exact bytes: the record's script on this track
      train_seed<SEED>.log    one per seed, written here by the service in the training-log format
                              (docs/CONTRACTS.md §2; the lines are listed in §6 "Records of the run service")
      submission.json         schema 1, every number read back from those logs (tools.submit.assemble's rule)
      README.md               generated: the run's name, the per-seed table, how the service scored it

Only the service writes these logs, from what it measured and kept: the code, its own score and checks
(`RunResult.evaluation`), its clock for training and scoring, and the size of the exported model it kept
(`runs/<id>/model.pt2`, zlib level 9, the same rule as tools.service.runner.compressed_size). The model itself is
not shipped (the logs name its compressed size; only the service can score it again).

`seed_log_text` is pure. `assemble_service_record` refuses (ValueError, one line) what it cannot write honestly: a
seed run that did not succeed, repeated seeds, a missing or changed model file, a run scored on other validation
bytes than the dataset's; it builds the folder in a hidden staging folder beside its destination and renames it into
place, so a record is complete or absent. Everything the judge decides (caps, the number of seeds, significance)
is left to the judge: `judge_service_record`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tools.records.datasets import BYTE_TOKENIZER_SHA256, is_raw_byte_manifest
from tools.records.logparse import SEPARATOR, parse_log_text
from tools.records.model import ParsedLog, RecordError, Report, Track
from tools.records.paths import write_atomic
from tools.service.dataset import NAME as DATASET_NAME
from tools.service.outcome import SUCCEEDED
from tools.service.runner import HARNESS_FILE, compressed_size
from tools.service.scorer import HARNESS_DIR, SCORE_SCRIPT

TRACK_ID = "track_service_bytes"
SCRIPT_NAME = "train.py"
SCORE_LABEL = "final_service_exact"
SIZE_LABEL = "export+zlib"  # the exported model (torch.export .pt2), compressed with zlib at level 9
_PLAIN_VALUE = re.compile(r'[^\s"\\]+\Z')
_KEY = re.compile(r"[A-Za-z_][\w.\-]*\Z")  # a key the log parser reads (tools.records.logparse)


@dataclass(frozen=True)
class SeedRun:
    """One seed's run of the submitted code, as the service stored it."""

    seed: int
    run_label: str  # e.g. "alice/run-5"
    result: dict  # RunResult.to_dict() (tools/service/runner.py), optionally with "worker", "hardware", "software"
    started_at: float  # epoch seconds
    finished_at: float
    # The kept exported model (runs/<id>/model.pt2); None when it stayed on the Celery worker that ran it, whose
    # measured `model_zlib_bytes` then stands for it.
    model_path: Path | None


# -- one seed's log (pure) --------------------------------------------------------------------------------------------


def _quoted(value: Any) -> str:
    """A key:value value as the log parser reads it back: bare when it has no space or quote, else double-quoted."""
    text = " ".join(str(value).split()) or "unknown"
    if _PLAIN_VALUE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fields(values: Mapping[str, Any]) -> str:
    """`key:value ...`; a key the parser could not read back (from a worker's own description) is left out."""
    return " ".join(f"{key}:{_quoted(value)}" for key, value in values.items() if _KEY.match(str(key)))


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000.0:.0f}ms"


def _check_statuses(evaluation: Mapping[str, Any]) -> dict[str, str]:
    """The service's checks as `id: pass|fail`, in its order (normalization, causality, finite)."""
    return {str(check.get("id")): "pass" if check.get("passed") else "fail"
            for check in evaluation.get("checks") or () if isinstance(check, Mapping)}


def seed_log_text(
    code: str,
    run: SeedRun,
    *,
    manifest: Mapping[str, Any],
    manifest_sha256: str,
    model_bytes: int,
    time_budget_s: float,
    harness_sha256: str,
    scorer_sha256: str,
    hardware: Mapping[str, Any],
    software: Mapping[str, Any],
) -> str:
    """The seed's training log (docs/CONTRACTS.md §2 and §6): the code, the separator, then the service's lines."""
    result = run.result
    evaluation = result.get("evaluation") or {}
    val_bpb = float(result["val_bpb"])
    code_bytes = len(code.encode("utf-8"))
    service = {"harness_sha256": harness_sha256, "scorer_sha256": scorer_sha256,
               "worker": result.get("worker") or "local", "isolation": result.get("isolation") or "unknown",
               **_check_statuses(evaluation),
               **{key: evaluation.get(key) for key in ("probes", "calls", "windows", "rows_per_call", "rounds")
                  if evaluation.get(key) is not None}}
    if isinstance(result.get("reported_val_bpb"), int | float):
        service["reported_bpb"] = f"{result['reported_val_bpb']:.8f}"
        service["reported_mismatch"] = "true" if result.get("reported_mismatch") else "false"
    lines = [
        f"run_id:{_quoted(run.run_label)} seed:{run.seed}",
        f"start_time:{_iso(run.started_at)}",
        f"code_sha256:{hashlib.sha256(code.encode('utf-8')).hexdigest()} code_bytes:{code_bytes}",
        f"hardware: {_fields(hardware)}",
        f"software: {_fields(software)}",
        f"dataset: name:{DATASET_NAME} manifest_sha256:{manifest_sha256} tokenizer_sha256:{BYTE_TOKENIZER_SHA256}",
        f"val_tokens:{manifest['val_bytes']} val_bytes:{manifest['val_bytes']}",
        f"hyperparameters: TORCH_SEED={run.seed} PG_TIME_BUDGET={time_budget_s:g}",
        f"service: {_fields(service)}",
        f"step:{int(result['steps'])}/{int(result['steps'])} train_time:{_ms(result['training_s'])}",
        f"Serialized model {SIZE_LABEL}: {model_bytes} bytes",
        f"Code size: {code_bytes} bytes",
        f"Total submission size {SIZE_LABEL}: {model_bytes + code_bytes} bytes",
        f"{SCORE_LABEL} val_loss:{val_bpb * math.log(2):.8f} val_bpb:{val_bpb:.8f}",
        f"eval_time:{_ms(result['eval_s'])}",
        f"train_time:{_ms(result['training_s'])}",
        f"end_time:{_iso(run.finished_at)}",
    ]
    return code + "\n" + SEPARATOR + "\n" + "\n".join(lines) + "\n"


# -- what the assembler refuses ---------------------------------------------------------------------------------------


def _where(run: SeedRun) -> str:
    return f"seed {run.seed} ({run.run_label})"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _check_run(run: SeedRun, val_bytes: int) -> None:
    """ValueError (one line) when the run cannot become part of a record."""
    where, result = _where(run), run.result
    if isinstance(run.seed, bool) or not isinstance(run.seed, int) or run.seed < 0:
        raise ValueError(f"{where}: a seed is a non-negative integer, got {run.seed!r}")
    if not isinstance(result, Mapping):
        raise ValueError(f"{where}: no stored run result")
    status = result.get("status")
    if status != SUCCEEDED:
        reason = result.get("reason") or "no reason stored"
        raise ValueError(f"{where} did not succeed ({status}: {reason}); only succeeded runs make a record")
    evaluation = result.get("evaluation")
    val_bpb = _number(result.get("val_bpb"))
    if not isinstance(evaluation, Mapping) or not evaluation.get("passed") or val_bpb is None:
        raise ValueError(f"{where}: the service's evaluation did not pass, so it has no score")
    failed = [check for check, verdict in _check_statuses(evaluation).items() if verdict != "pass"]
    if failed or _number(evaluation.get("val_bpb")) != val_bpb:
        raise ValueError(f"{where}: the stored evaluation does not back the score "
                         f"({'failed: ' + ', '.join(failed) if failed else 'its val_bpb differs'})")
    if evaluation.get("val_bytes") != val_bytes:
        raise ValueError(f"{where} was scored on {evaluation.get('val_bytes')} validation bytes, but the dataset's "
                         f"manifest says {val_bytes}: another dataset")
    steps = result.get("steps")
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)  # a count that went through JSON as 812.0
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"{where}: the code reported no total_steps in its results line; a record's log states the "
                         f"steps it trained")
    for key in ("training_s", "eval_s"):
        value = _number(result.get(key))
        if value is None or value < 0:
            raise ValueError(f"{where}: no {key} stored (the service's clock)")
    if _number(run.started_at) is None or _number(run.finished_at) is None or run.finished_at < run.started_at:
        raise ValueError(f"{where}: started_at/finished_at are not a time span ({run.started_at!r}, {run.finished_at!r})")


def _model_bytes(run: SeedRun) -> int:
    """zlib level 9 of the kept exported model; ValueError when it is missing or not the file that was scored."""
    if run.model_path is None:
        stored = run.result.get("model_zlib_bytes")
        if isinstance(stored, bool) or not isinstance(stored, int) or stored <= 0:
            raise ValueError(f"{_where(run)}: the model stayed on its worker and the run stored no model size")
        return stored
    path = Path(run.model_path)
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{_where(run)}: the kept model {path} is missing")
    size = compressed_size(path)
    stored = run.result.get("model_zlib_bytes")
    if size is None:
        raise ValueError(f"{_where(run)}: the kept model {path} is missing")
    if stored is not None and stored != size:
        raise ValueError(f"{_where(run)}: the kept model {path} compresses to {size} bytes, but the run stored "
                         f"{stored}: not the model that was scored")
    return size


def _read_manifest(dataset_dir: Path) -> tuple[dict, str]:
    path = Path(dataset_dir) / "manifest.json"
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
    except (OSError, ValueError) as problem:
        raise ValueError(f"{path}: not a readable dataset manifest ({problem})") from None
    if not isinstance(manifest, dict) or not is_raw_byte_manifest(manifest) or not isinstance(
            manifest.get("val_bytes"), int):
        raise ValueError(f"{path}: not the run service's byte dataset (tools/service/dataset.py)")
    return manifest, hashlib.sha256(raw).hexdigest()


# -- the machine and the software ---------------------------------------------------------------------------------


def _local_hardware() -> dict[str, Any]:
    """The machine assembling the record (a one-machine service ran the runs here), as train_gpt.py describes one."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"device": "cpu", "cpu_model": model, "cpu_cores": cores, "world_size": 1}


def _local_software() -> dict[str, Any]:
    versions: dict[str, Any] = {}
    for package in ("torch", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    versions["python"] = platform.python_version()
    return versions


def _machine(result: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hardware, software) of the machine that ran the seed: what the run result says (a worker may report its
    own), else this machine when the run was local; a remote worker that said nothing is named, not described."""
    hardware, software = result.get("hardware"), result.get("software")
    if isinstance(hardware, Mapping) and hardware:
        hardware = dict(hardware)
    elif result.get("worker"):
        hardware = {"device": "cpu", "world_size": 1, "worker": result["worker"]}
    else:
        hardware = _local_hardware()
    software = dict(software) if isinstance(software, Mapping) and software else (
        {"worker": result["worker"]} if result.get("worker") else _local_software())
    return hardware, software


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the record -------------------------------------------------------------------------------------------------------


def _track(records_dir: Path) -> Track | None:
    from tools.verify.checks.judging import load_track_table

    return load_track_table(Path(records_dir).resolve()).get(TRACK_ID)


def _cell(value: Any, fmt: str = "{}") -> str:
    return "?" if value is None else fmt.format(value)


def render_readme(submission, runs: Sequence[SeedRun], logs: Mapping[int, ParsedLog], track: Track | None,
                  manifest: Mapping[str, Any]) -> str:
    """README.md: who and what (the run's name), the per-seed table, how the service scored it."""
    track_line = f"{track.title} (`{TRACK_ID}`)" if track is not None else f"`{TRACK_ID}`"
    std = _cell(submission.val_bpb_std, "{:.8f}")
    first = logs[runs[0].seed]
    result = submission.seed_results[runs[0].seed]
    lines = [
        f"# {submission.name}",
        "",
        f"- Author: {submission.author} (@{submission.github_id})",
        f"- Track: {track_line}",
        f"- Date: {submission.date.isoformat()}",
        f"- val_bpb: {submission.val_bpb:.8f} ± {std} (mean ± sample std over {len(runs)} seeds), scored by the "
        f"run service",
        "",
        submission.blurb or f"_{submission.name}: the submitted `{SCRIPT_NAME}`, run by the service on each seed._",
        "",
        "## Results",
        "",
        "| seed | service run | val_bpb | val_loss | steps | train time (s) | eval time (s) | model bytes | total bytes "
        "| checks | log |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for run in runs:
        r = submission.seed_results[run.seed]
        checks = ", ".join(f"{name} {status}" for name, status in
                           _check_statuses(run.result.get("evaluation") or {}).items())
        lines.append(
            f"| {r.seed} | {run.run_label} | {_cell(r.val_bpb, '{:.8f}')} | {_cell(r.val_loss, '{:.8f}')} "
            f"| {_cell(r.steps)} | {_cell(r.train_time_s, '{:.3f}')} | {_cell(r.eval_time_s, '{:.3f}')} "
            f"| {_cell(r.artifact_bytes)} | {_cell(r.bytes_total)} | {checks} | [{r.log}]({r.log}) |"
        )
    documents = [d for d in manifest.get("documents", []) if isinstance(d, Mapping) and d.get("split") == "val"]
    lines += [
        "",
        "## How it was scored",
        "",
        f"The run service (docs/SERVICE.md) ran `{SCRIPT_NAME}` once per seed (`TORCH_SEED`) in its sandbox, with a "
        f"training budget of {first.hyperparameters.get('PG_TIME_BUDGET', '?')} s. The code exported its model "
        f"(`torch.export`); the service scored that export itself, in fresh sandboxed processes, on the "
        f"{len(documents)} validation work(s) as raw bytes ({manifest.get('val_bytes', 0):,} bytes: 256 byte values "
        f"+ BOS, vocabulary 257, non-overlapping 256-byte windows), with its normalization, causality and finite "
        f"checks inside the same calls. val_bpb = total cross-entropy in bits / validation bytes; val_loss is nats "
        f"per byte. Train time is the service's clock (start of the run to its evaluation request: startup and the "
        f"export count); eval time is the scoring calls'. Model bytes: the kept export compressed with zlib "
        f"(level 9); total = model + `{SCRIPT_NAME}`.",
        "",
        "Only the service can run this code again: the judge checks the record from its files and the service's "
        "logs (`verify record`); its probes and tokenizer audit say they do not apply on this track, and no "
        "reproduction is run for it (`reproducible_in_ci = false`).",
        "",
        f"- Dataset: `{_cell(first.dataset_name)}` (manifest sha256 `{_cell(first.manifest_sha256)}`; byte "
        f"tokenizer sha256 `{_cell(first.tokenizer_sha256)}`)",
        f"- Hardware: {_describe(first.hardware)}",
        f"- Software: {_describe(first.software)}",
        f"- Code: `{SCRIPT_NAME}`, {result.code_bytes} bytes, sha256 `{result.code_sha256}`",
        "",
    ]
    return "\n".join(lines)


def _describe(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) if values else "not logged"


def assemble_service_record(
    code: str,
    seeds: Sequence[SeedRun],
    *,
    records_dir: Path,
    dataset_dir: Path,
    author: str,
    github_id: str,
    name: str,
    blurb: str,
    date: str,
    time_budget_s: float | None = None,
) -> Path:
    """Write records_dir/track_service_bytes/<date>_<slug>/ from the seed runs of `code`; return the folder.

    `dataset_dir`: the byte dataset the runs were scored on (its manifest's sha256 goes into every log).
    `time_budget_s`: the training budget the service gave the runs (default: the service's, `PG_SERVICE_TIME_BUDGET`
    or 180 s). ValueError (one line) for anything that cannot become an honest record; nothing is written then.
    """
    from tools.service.config import default_time_budget
    from tools.submit.assemble import (
        STAGING_PREFIX,
        SeedLog,
        build_submission,
        record_folder_name,
        remove_stale_staging,
        submission_document,
    )

    try:
        day = dt.date.fromisoformat(date)
    except (TypeError, ValueError):
        raise ValueError(f"date: expected YYYY-MM-DD, got {date!r}") from None
    try:
        folder_name = record_folder_name(day, name)
        code_bytes = code.encode("utf-8")
    except RecordError as problem:
        raise ValueError(f"name: {problem.message}") from None
    except UnicodeEncodeError as problem:
        raise ValueError(f"code: not encodable as UTF-8 ({problem.reason} at character {problem.start})") from None
    if not seeds:
        raise ValueError("no seed runs: a record needs at least one")
    repeated = sorted({run.seed for run in seeds if sum(other.seed == run.seed for other in seeds) > 1})
    if repeated:
        raise ValueError(f"seed {repeated[0]} is given more than once; each seed runs once in a record")
    manifest, manifest_sha256 = _read_manifest(dataset_dir)
    for run in seeds:
        _check_run(run, manifest["val_bytes"])
    budget = default_time_budget() if time_budget_s is None else float(time_budget_s)
    harness_sha256, scorer_sha256 = _file_sha256(HARNESS_FILE), _file_sha256(HARNESS_DIR / SCORE_SCRIPT)

    texts: dict[int, str] = {}
    logs: dict[int, ParsedLog] = {}
    for run in seeds:
        hardware, software = _machine(run.result)
        texts[run.seed] = seed_log_text(
            code, run, manifest=manifest, manifest_sha256=manifest_sha256, model_bytes=_model_bytes(run),
            time_budget_s=budget, harness_sha256=harness_sha256, scorer_sha256=scorer_sha256, hardware=hardware,
            software=software)
        logs[run.seed] = parsed = parse_log_text(texts[run.seed], f"train_seed{run.seed}.log")
        wrote = (code, run.seed, int(run.result["steps"]), float(f"{float(run.result['val_bpb']):.8f}"))
        read = (parsed.code, parsed.seed, parsed.steps, parsed.val_bpb)
        if read != wrote:  # a run label or value the log format cannot hold; never write what reads otherwise
            raise ValueError(f"{_where(run)}: the written log does not read back as written "
                             f"({'; '.join(parsed.warnings) or 'code, seed, steps or score'})")
    seed_logs = [SeedLog(Path(f"train_seed{run.seed}.log"), logs[run.seed], run.seed, None) for run in seeds]
    try:
        submission = build_submission(seed_logs, code, track_id=TRACK_ID, name=name, author=author,
                                      github_id=github_id, blurb=blurb, date=day)
        document = submission_document(submission)
    except RecordError as problem:
        raise ValueError(f"submission.json: {problem.message}") from None
    track = _track(records_dir)
    readme = render_readme(submission, seeds, logs, track, manifest)

    track_folder = Path(records_dir) / TRACK_ID
    destination = track_folder / folder_name
    if destination.exists() or destination.is_symlink():
        raise ValueError(f"{destination} already exists; a record folder is never overwritten (choose another name)")
    track_folder.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(track_folder)  # left by an interrupted assembly (hidden: no judge reads them)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=track_folder))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the record folder it becomes is not
        write_atomic(staging / SCRIPT_NAME, code_bytes)
        for seed, text in texts.items():
            write_atomic(staging / f"train_seed{seed}.log", text.encode("utf-8"))
        write_atomic(staging / "submission.json", document.encode("utf-8"))
        write_atomic(staging / "README.md", readme.encode("utf-8"))
        if destination.exists() or destination.is_symlink():  # another assembly got there first
            raise ValueError(f"{destination} already exists; a record folder is never overwritten")
        try:
            os.rename(staging, destination)
        except OSError as problem:
            raise ValueError(f"{destination}: cannot be put in place ({problem.strerror or problem}); "
                             f"a record folder is never overwritten") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def judge_service_record(folder: Path, *, dataset_dir: Path, against: float | None = None,
                         tracks: Mapping[str, Track] | None = None) -> Report:
    """verify_record on an assembled folder (records_dir/<track>/<record>), its dataset check against `dataset_dir`.

    The judge finds a dataset by its name under a datasets root (`<root>/<track.dataset>/manifest.json`), so
    `dataset_dir` must be named as the track's dataset (`shakespeare_bytes`: the service's
    `<state dir>/data/shakespeare_bytes`); ValueError otherwise. The SOTA it must beat is the track's accepted chain
    among the records beside it (or `against`). RecordError when the folder is not a record folder.
    """
    from tools.verify.checks.judging import load_track_table
    from tools.verify.checks.verdict import verify_record

    folder = Path(folder)
    records_root = folder.resolve().parent.parent
    table = tracks if tracks is not None else load_track_table(records_root)
    track = table.get(folder.resolve().parent.name)
    dataset_dir = Path(dataset_dir)
    if track is not None and dataset_dir.name != track.dataset:
        raise ValueError(f"{dataset_dir}: the judge finds track {track.id}'s dataset as <root>/{track.dataset}; "
                         f"name the folder {track.dataset}")
    return verify_record(folder, against=against, tracks=table, records_root=records_root,
                         datasets_root=dataset_dir.parent)

"""Experiment tracking: training logs and judge verdicts as MLflow runs.

Store: `MLFLOW_TRACKING_URI` when set, else a local SQLite file `<repo>/mlflow.db` (ignored by git). For a SQLite
store, artifacts go to `mlartifacts/` beside the database file (so `<repo>/mlartifacts/` by default) rather than
MLflow's default `./mlruns` relative to whatever the working directory happens to be.

MLflow is imported only inside these functions: it takes seconds to import and most commands never track.
Everything goes through MlflowClient with explicit experiments, and metrics are sent in batches.

One MLflow run per training run. The trainer, when MLFLOW_TRACKING_URI is set, opens it live; ingesting the log
later (`submit track`) finds that run again and completes it rather than adding a second one. A run is found by
the tag `log_sha256` (this exact log) or `training_key` (`<RUN_ID>@<start_time>`, both from the log's header), and
ingestion only adds what the run lacks (params, metric points by key and step, artifacts), so it is idempotent.
The names below are the only ones: train_gpt.py keeps copies (it cannot import tools/) and
tests/test_tracking.py checks they are equal.

Runs of experiment "training" ($MLFLOW_EXPERIMENT_NAME when set, as for the trainer):
  params   seed, hp.<KEY>, hardware.<key>, software.<key>, dataset.name, dataset.manifest_sha256,
           dataset.tokenizer_sha256, val_tokens, val_bytes
  metrics  CURVE_METRICS per step; FINAL_METRICS at one step past the last training step (so MLflow's "latest"
           val_bpb is the final round-trip score)
  tags     log_sha256, training_key, run_id (the trainer's RUN_ID), code_sha256, track (--track, else the log's
           TRACK hyperparameter), log_name
  status   FINISHED when the log has its final score line, else FAILED (a crashed or killed run)
  times    start and end from the log's start_time/end_time lines (or per-line Unix timestamps); metric points
           at start + train_time
  artifacts log/<file name>; model/final_model.int8.ptz when found next to the log (logs/<RUN_ID>/...)
Runs of experiment "verdicts": one per `submit record` judgement (record, ok, verdict, check.<id> tags; stats as
metrics).

Both experiments carry the tag mlflow.experimentKind=custom_model_development: MLflow 3 UIs without the GenAI/ML
toggle read it to open an experiment on its runs rather than its traces. The 3.17 UI (its bundled JavaScript)
ignores the tag and follows the toggle, GenAI by default, remembered per browser, or `?workflowType=` in the
URL: ui_hint() gives the URL that opens the runs, and `submit track` prints it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tools.records.model import ParsedLog, RecordError, Report
from tools.records.paths import file_sha256
from tools.submit.assemble import find_artifact

TRAINING_EXPERIMENT = "training"
VERDICTS_EXPERIMENT = "verdicts"
CURVE_METRICS = ("train_loss", "val_loss", "val_bpb")  # per logged step
FINAL_METRICS = ("val_bpb", "val_loss", "train_time_s", "eval_time_s", "bytes_total", "model_bytes", "code_bytes", "steps")
TRAINING_KEY_TAG = "training_key"
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
LOG_ARTIFACT_DIR = "log"
MODEL_ARTIFACT_DIR = "model"
ARTIFACT_FILE_NAME = "final_model.int8.ptz"

# MLflow's own limits (mlflow.utils.validation): keep well inside them rather than fail a whole batch.
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 5000
_BATCH_METRICS = 1000
_BATCH_PARAMS = 100
_BATCH_TAGS = 100
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /:]")


_START_RE = re.compile(r"^start_time:(\S+)$", re.MULTILINE)
_END_RE = re.compile(r"^end_time:(\S+)$", re.MULTILINE)
_UNIX_PREFIX_RE = re.compile(r"^(\d{9,11}\.\d{1,6}) ", re.MULTILINE)  # public logs: `1776142360.538 step:...`


@dataclass(frozen=True)
class Ingested:
    path: Path
    run_id: str  # the MLflow run id
    created: bool  # False when the run was already in the store (ingested before, or opened by the trainer)
    experiment_id: str = ""


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """The store to use: an explicit URI, else $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    from tools.records.paths import repo_root

    return f"sqlite:///{Path(repo_root()).resolve() / 'mlflow.db'}"


def training_experiment() -> str:
    """The trainer's rule too: $MLFLOW_EXPERIMENT_NAME, else "training"."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or TRAINING_EXPERIMENT


def artifact_location(uri: str) -> str | None:
    """Where new experiments keep artifacts: `mlartifacts/` beside a SQLite file; the server's choice otherwise.

    `sqlite:///x.db` is relative to the working directory and `sqlite:////abs/x.db` absolute, as SQLAlchemy reads
    them. train_gpt.py's mlflow_artifact_location is the same rule (tests check it), so both write to one store.
    """
    if not uri.startswith("sqlite:///"):
        return None
    database = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
    if database in ("", ":memory:"):
        return None
    return (Path(database).parent / "mlartifacts").resolve().as_uri()


def ui_hint(uri: str, experiment_id: str) -> str:
    """How to open the runs: MLflow 3.17's UI starts in its GenAI view unless the URL asks for the ML one."""
    page = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if urlparse(uri).scheme in ("http", "https"):
        return f"view: {uri.rstrip('/')}/{page}"
    return f"view: mlflow ui --backend-store-uri {uri}  then open http://127.0.0.1:5000/{page}"


@contextlib.contextmanager
def quiet_mlflow():
    # Store creation logs migration chatter at INFO on stderr; the CLIs print their own one-line results.
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def mlflow_client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri), tags=EXPERIMENT_TAGS)
        except Exception:
            # Someone created it between our lookup and our create: use theirs.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    for key, value in EXPERIMENT_TAGS.items():  # experiments made before the tag existed
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def _safe_key(key: str) -> str:
    return _KEY_UNSAFE.sub("_", key)[:250] or "_"


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _log_batch(client, run_id: str, metrics=(), params=(), tags=()) -> None:
    for chunk in _chunks(list(metrics), _BATCH_METRICS):
        client.log_batch(run_id, metrics=chunk)
    for chunk in _chunks(list(params), _BATCH_PARAMS):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(list(tags), _BATCH_TAGS):
        client.log_batch(run_id, tags=chunk)


def sha256_file(path: Path) -> str:
    return file_sha256(path, follow_symlinks=True)


def log_params(log: ParsedLog) -> dict[str, str]:
    """The log's configuration as MLflow params (strings, keys made safe, values truncated to MLflow's limit)."""
    params: dict[str, Any] = {
        "seed": log.seed,
        "dataset.name": log.dataset_name,
        "dataset.manifest_sha256": log.manifest_sha256,
        "dataset.tokenizer_sha256": log.tokenizer_sha256,
        "val_tokens": log.val_tokens,
        "val_bytes": log.val_bytes,
    }
    for prefix, values in (("hp", log.hyperparameters), ("hardware", log.hardware), ("software", log.software)):
        for key, value in values.items():
            params[f"{prefix}.{key}"] = value
    return {_safe_key(k): str(v)[:_MAX_PARAM_VALUE] for k, v in sorted(params.items()) if v is not None}


def _finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def log_metrics(log: ParsedLog, start_ms: int | None = None, end_ms: int | None = None) -> list[tuple[str, float, int, int]]:
    """(key, value, step, timestamp ms): the learning curve, then the final numbers one step past the last.

    A curve point is stamped start + its train_time when both are known, the finals at the end; else now."""
    now_ms = int(time.time() * 1000)
    rows: list[tuple[str, float, int, int]] = []
    for point in log.curve:
        known = start_ms is not None and point.train_time_ms is not None
        stamp = start_ms + int(point.train_time_ms) if known else (end_ms or now_ms)
        for key in CURVE_METRICS:
            value = getattr(point, key)
            if value is not None:
                rows.append((key, float(value), point.step, stamp))
    final_step = max([p.step for p in log.curve] + [log.steps or 0]) + 1
    seconds = [None if ms is None else ms / 1000 for ms in (log.train_time_ms, log.eval_time_ms)]
    values = (log.val_bpb, log.val_loss, *seconds, log.bytes_total, log.model_bytes, log.code_bytes, log.steps)
    finals = zip(FINAL_METRICS, values, strict=True)
    rows += [(key, float(value), final_step, end_ms or now_ms) for key, value in finals if value is not None]
    return rows


def run_status(log: ParsedLog) -> str:
    """FINISHED only with the final score line; a log that stops before it is a crashed (or killed) run."""
    return "FINISHED" if log.val_bpb is not None else "FAILED"


def _iso_ms(text: str) -> int | None:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a time without a zone is not a moment
    return int(moment.timestamp() * 1000)


def log_times(text: str, log: ParsedLog) -> tuple[int | None, int | None]:
    """(start, end) in ms since the epoch, from the log: the trainer's start_time/end_time lines, else per-line Unix
    timestamps. A log with a start but no end (it crashed) ends at start + its last train_time + eval_time, a lower
    bound. None where the log says nothing: MLflow then uses the time of ingestion."""
    body = text[len(log.code) :] if log.code and text.startswith(log.code) else text
    starts, ends = _START_RE.findall(body), _END_RE.findall(body)
    start = _iso_ms(starts[-1]) if starts else None
    end = _iso_ms(ends[-1]) if ends else None
    stamps = _UNIX_PREFIX_RE.findall(body)
    if start is None and stamps:
        start, end = int(float(stamps[0]) * 1000), int(float(stamps[-1]) * 1000)
    if start is not None and end is None:
        end = start + int((log.train_time_ms or 0) + (log.eval_time_ms or 0))
    return start, end


def training_key(text: str, log: ParsedLog) -> str | None:
    """`<RUN_ID>@<start_time>`, the tag the trainer gives its live run: names one training run across copies of its
    log (a RUN_ID alone may be reused). None for logs without both."""
    body = text[len(log.code) :] if log.code and text.startswith(log.code) else text
    starts = _START_RE.findall(body)
    return f"{log.run_id}@{starts[-1]}" if log.run_id and starts else None


def log_tags(
    log: ParsedLog, log_sha256: str, log_name: str, track_id: str | None, key: str | None = None
) -> dict[str, str]:
    code_sha256 = hashlib.sha256(log.code.encode()).hexdigest() if log.code is not None else log.code_sha256
    tags = {
        "log_sha256": log_sha256,
        TRAINING_KEY_TAG: key,
        "log_name": log_name,
        "run_id": log.run_id,
        "code_sha256": code_sha256,
        "track": track_id,
        "mlflow.runName": " ".join(str(x) for x in (log.run_id or log_name, f"seed {log.seed}") if x),
    }
    return {k: str(v)[:_MAX_TAG_VALUE] for k, v in tags.items() if v is not None}


@dataclass(frozen=True)
class _LogFile:
    path: Path
    log: ParsedLog
    digest: str  # sha256 of the file
    key: str | None  # training_key
    start_ms: int | None
    end_ms: int | None


def _read_for_tracking(path: Path) -> _LogFile:
    from tools.records.logparse import parse_log

    log = parse_log(path)
    if log.code is None:
        raise RecordError(path, "not a training log: no embedded source followed by the 100 '=' separator line")
    text = path.read_bytes().decode("utf-8", errors="replace")
    return _LogFile(path, log, sha256_file(path), training_key(text, log), *log_times(text, log))


def _filter_equals(tag: str, value: str) -> str | None:
    """An MLflow search filter `tags.<tag> = '<value>'`; None when the value cannot be quoted (both quote kinds)."""
    for quote in ("'", '"'):
        if quote not in value:
            return f"tags.{tag} = {quote}{value}{quote}"
    return None


def _find_run(client, experiment_id: str, item: _LogFile):
    """The run of this training: ingested from this very log before, else the trainer's live run of it."""
    for tag, value in (("log_sha256", item.digest), (TRAINING_KEY_TAG, item.key)):
        where = _filter_equals(tag, value) if value else None
        found = client.search_runs([experiment_id], filter_string=where, max_results=1) if where else []
        if found:
            return found[0]
    return None


def _missing_points(client, run, rows: list[tuple[str, float, int, int]]) -> list[tuple[str, float, int, int]]:
    """The metric points a run lacks, by (key, step): the trainer's live values are kept, not doubled."""
    if run is None:
        return rows
    have = {key: {m.step for m in client.get_metric_history(run.info.run_id, key)} for key in {r[0] for r in rows}}
    return [row for row in rows if row[2] not in have[row[0]]]


def _complete_run(client, run_id: str, run, item: _LogFile, track_id: str | None) -> None:
    """Add to the run what the log says and it lacks; log_sha256 last, so a half-done run is completed next time."""
    from mlflow.entities import Metric, Param, RunTag

    log = item.log
    tags = log_tags(log, item.digest, item.path.name, track_id or log.hyperparameters.get("TRACK"), item.key)
    have_params = run.data.params if run is not None else {}
    _log_batch(
        client,
        run_id,
        metrics=[Metric(k, v, ts, step) for k, v, step, ts in _missing_points(client, run, log_metrics(log, item.start_ms, item.end_ms))],
        params=[Param(k, v) for k, v in log_params(log).items() if k not in have_params],
        tags=[RunTag(k, v) for k, v in tags.items() if k != "log_sha256"],
    )
    if run is None or run.data.tags.get("log_sha256") != item.digest:
        client.log_artifact(run_id, str(item.path), artifact_path=LOG_ARTIFACT_DIR)
    model = find_artifact(item.path, log.run_id)
    if model is not None and not [a for a in client.list_artifacts(run_id, MODEL_ARTIFACT_DIR) if not a.is_dir]:
        client.log_artifact(run_id, str(model), artifact_path=MODEL_ARTIFACT_DIR)
    status = run_status(log)
    if run is None or run.info.status != status or run.info.end_time is None:
        client.set_terminated(run_id, status, end_time=item.end_ms)
    client.set_tag(run_id, "log_sha256", item.digest)


def ingest(paths: Sequence[str | Path], tracking_uri: str | None = None, *, track_id: str | None = None) -> list[Ingested]:
    """Ingest each log as the run of its training in experiment "training": found again (ingested before, or opened
    live by the trainer) and completed, else created with the log's start time. Idempotent.

    Every log is parsed before anything is written, so one unreadable log (RecordError) ingests nothing.
    """
    items = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise RecordError(path, "no such log file")
        items.append(_read_for_tracking(path))
    uri = resolve_tracking_uri(tracking_uri)

    results: list[Ingested] = []
    with quiet_mlflow():
        client = mlflow_client(uri)
        experiment_id = ensure_experiment(client, training_experiment(), uri)
        for item in items:
            run = _find_run(client, experiment_id, item)
            if run is not None:
                _complete_run(client, run.info.run_id, run, item, track_id)
                results.append(Ingested(item.path, run.info.run_id, created=False, experiment_id=experiment_id))
                continue
            name = log_tags(item.log, item.digest, item.path.name, None).get("mlflow.runName")
            tags = {TRAINING_KEY_TAG: item.key} if item.key else None
            run_id = client.create_run(experiment_id, start_time=item.start_ms, tags=tags, run_name=name).info.run_id
            try:
                _complete_run(client, run_id, None, item, track_id)
            except Exception:
                # A half-ingested new run must not be found again by its training_key: remove it, then re-raise.
                client.delete_run(run_id)
                raise
            results.append(Ingested(item.path, run_id, created=True, experiment_id=experiment_id))
    return results


def ingest_logs(paths: Sequence[str | Path], tracking_uri: str | None = None, *, track_id: str | None = None) -> list[str]:
    """CONTRACTS §7: ingest logs, return one MLflow run id per log (idempotent by the log's sha256)."""
    return [item.run_id for item in ingest(paths, tracking_uri, track_id=track_id)]


def fetch_logs(run_ids: Sequence[str], dest: Path, tracking_uri: str | None = None) -> list[Path]:
    """Download the logs (and model artifacts) of ingested runs into `dest`, laid out as the trainer writes them.

    Each run gets its own folder `dest/<mlflow run id>/` holding `<log name>` and, when the run has a model,
    `<RUN_ID>/final_model.int8.ptz`, so assemble finds it "next to the log". The download is checked against
    the run's log_sha256 tag.
    """
    uri = resolve_tracking_uri(tracking_uri)
    with quiet_mlflow():
        client = mlflow_client(uri)
        paths: list[Path] = []
        for run_id in run_ids:
            try:
                run = client.get_run(run_id)
            except Exception as exc:  # MlflowException: RESOURCE_DOES_NOT_EXIST, bad id, ...
                raise RecordError(f"mlflow run {run_id}", f"not found in {uri} ({type(exc).__name__})") from None
            tags = run.data.tags
            log_names = [a.path for a in client.list_artifacts(run_id, LOG_ARTIFACT_DIR) if not a.is_dir]
            if len(log_names) != 1 or "log_sha256" not in tags:
                raise RecordError(f"mlflow run {run_id}", "not a run ingested by `submit track` (no single log artifact)")
            folder = dest / run_id
            folder.mkdir(parents=True, exist_ok=True)
            log_path = Path(client.download_artifacts(run_id, log_names[0], str(folder)))
            if sha256_file(log_path) != tags["log_sha256"]:
                raise RecordError(f"mlflow run {run_id}", "downloaded log does not match the run's log_sha256 tag")
            models = [a.path for a in client.list_artifacts(run_id, MODEL_ARTIFACT_DIR) if not a.is_dir]
            trainer_run_id = tags.get("run_id")
            if models and trainer_run_id and "/" not in trainer_run_id and trainer_run_id not in (".", ".."):
                model_folder = folder / trainer_run_id
                model_folder.mkdir(exist_ok=True)
                downloaded = Path(client.download_artifacts(run_id, models[0], str(folder)))
                os.replace(downloaded, model_folder / ARTIFACT_FILE_NAME)
            paths.append(log_path)
    return paths


def verdict_metrics(stats: Mapping[str, Any]) -> dict[str, float]:
    """The numeric statistics of a report (nested dicts flattened with dots; booleans and text left out)."""
    metrics: dict[str, float] = {}
    for key, value in sorted(stats.items()):
        if isinstance(value, Mapping):
            for sub_key, sub_value in verdict_metrics(value).items():
                metrics[_safe_key(f"{key}.{sub_key}")] = sub_value
        elif isinstance(value, int | float) and not isinstance(value, bool) and _finite(float(value)):
            metrics[_safe_key(key)] = float(value)
    return metrics


def log_verdict(
    report: Report,
    *,
    verdict: str,
    record_path: str | Path | None = None,
    track_id: str | None = None,
    tracking_uri: str | None = None,
) -> str:
    """Record one judgement as a run of experiment "verdicts"; returns the MLflow run id."""
    from mlflow.entities import Metric, Param, RunTag

    uri = resolve_tracking_uri(tracking_uri)
    record = str(record_path or report.record)
    tags = {"record": record, "ok": str(report.ok).lower(), "verdict": verdict}
    if track_id:
        tags["track"] = track_id
    for check in report.checks:
        tags[_safe_key(f"check.{check.id}")] = check.status
        tags[_safe_key(f"check.{check.id}.message")] = check.message[:_MAX_TAG_VALUE]
    params = {"record": record[:_MAX_PARAM_VALUE], "verdict": verdict, "ok": str(report.ok).lower()}
    if track_id:
        params["track"] = track_id
    params.update({_safe_key(f"check.{c.id}"): c.status for c in report.checks})
    with quiet_mlflow():
        client = mlflow_client(uri)
        experiment_id = ensure_experiment(client, VERDICTS_EXPERIMENT, uri)
        run = client.create_run(experiment_id, run_name=f"{Path(record).name} {verdict}")
        now_ms = int(time.time() * 1000)
        _log_batch(
            client,
            run.info.run_id,
            metrics=[Metric(k, v, now_ms, 0) for k, v in verdict_metrics(report.stats).items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id

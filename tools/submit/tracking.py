"""Experiment tracking: training logs and judge verdicts as MLflow runs.

Store: `MLFLOW_TRACKING_URI` when set, else a local SQLite file `<repo>/mlflow.db` (ignored by git). For a SQLite
store, artifacts go to `mlartifacts/` beside the database file (so `<repo>/mlartifacts/` by default) rather than
MLflow's default `./mlruns` relative to whatever the working directory happens to be.

MLflow is imported only inside these functions: it takes seconds to import and most commands never track.
Everything goes through MlflowClient with explicit experiments, and metrics are sent in batches.

Runs of experiment "training" (one per log, found again by the tag `log_sha256`, so ingesting a log twice does
not make a second run):
  params   seed, hp.<KEY>, hardware.<key>, software.<key>, dataset.name, dataset.manifest_sha256,
           dataset.tokenizer_sha256, val_tokens, val_bytes
  metrics  train_loss / val_loss / val_bpb per step; the final round-trip score as val_bpb and val_loss at one
           step past the last training step (so MLflow's "latest" value is the score), train_time_s,
           eval_time_s, bytes_total, model_bytes, code_bytes, steps
  tags     log_sha256, run_id (the trainer's RUN_ID), code_sha256, track (--track, else the log's TRACK
           hyperparameter), log_name
  artifacts log/<file name>; model/final_model.int8.ptz when found next to the log (logs/<RUN_ID>/...)
Runs of experiment "verdicts": one per `submit record` judgement (record, ok, verdict, check.<id> tags; stats as
metrics).
"""

from __future__ import annotations

import contextlib
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
from tools.submit.assemble import find_artifact

TRAINING_EXPERIMENT = "training"
VERDICTS_EXPERIMENT = "verdicts"
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


@dataclass(frozen=True)
class Ingested:
    path: Path
    run_id: str  # the MLflow run id
    created: bool  # False when the log was already in the store


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """The store to use: an explicit URI, else $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    from tools.records.paths import repo_root

    return f"sqlite:///{Path(repo_root()).resolve() / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """Where new experiments keep artifacts: `mlartifacts/` beside a SQLite file; the server's choice otherwise."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    database = Path(unquote(parsed.path))
    if str(database) in ("", "/", "/:memory:"):
        return None
    return (database.parent / "mlartifacts").resolve().as_uri()


@contextlib.contextmanager
def _quiet_mlflow():
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


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    except Exception:
        # Someone created it between our lookup and our create: use theirs.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
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
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def log_metrics(log: ParsedLog) -> list[tuple[str, float, int]]:
    """(key, value, step) triples: the learning curve, then the final numbers."""
    triples: list[tuple[str, float, int]] = []
    for point in log.curve:
        for key in ("train_loss", "val_loss", "val_bpb"):
            value = getattr(point, key)
            if value is not None:
                triples.append((key, float(value), point.step))
    last_step = max([p.step for p in log.curve] + [log.steps or 0])
    final_step = last_step + 1
    finals = {
        "val_bpb": log.val_bpb,
        "val_loss": log.val_loss,
        "train_time_s": None if log.train_time_ms is None else log.train_time_ms / 1000,
        "eval_time_s": None if log.eval_time_ms is None else log.eval_time_ms / 1000,
        "bytes_total": log.bytes_total,
        "model_bytes": log.model_bytes,
        "code_bytes": log.code_bytes,
        "steps": log.steps,
    }
    triples += [(key, float(value), final_step) for key, value in finals.items() if value is not None]
    return triples


def log_tags(log: ParsedLog, log_sha256: str, log_name: str, track_id: str | None) -> dict[str, str]:
    code_sha256 = hashlib.sha256(log.code.encode()).hexdigest() if log.code is not None else log.code_sha256
    tags = {
        "log_sha256": log_sha256,
        "log_name": log_name,
        "run_id": log.run_id,
        "code_sha256": code_sha256,
        "track": track_id,
        "mlflow.runName": " ".join(str(x) for x in (log.run_id or log_name, f"seed {log.seed}") if x),
    }
    return {k: str(v)[:_MAX_TAG_VALUE] for k, v in tags.items() if v is not None}


def _parse_for_tracking(path: Path) -> ParsedLog:
    from tools.records.logparse import parse_log

    log = parse_log(path)
    if log.code is None:
        raise RecordError(path, "not a training log: no embedded source followed by the 100 '=' separator line")
    return log


def ingest(paths: Sequence[str | Path], tracking_uri: str | None = None, *, track_id: str | None = None) -> list[Ingested]:
    """Ingest each log as a run of experiment "training"; a log already in the store is found, not duplicated.

    Every log is parsed before anything is written, so one unreadable log (RecordError) ingests nothing.
    """
    parsed = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise RecordError(path, "no such log file")
        parsed.append((path, _parse_for_tracking(path), sha256_file(path)))
    uri = resolve_tracking_uri(tracking_uri)
    from mlflow.entities import Metric, Param, RunTag

    results: list[Ingested] = []
    with _quiet_mlflow():
        client = _client(uri)
        experiment_id = _experiment_id(client, TRAINING_EXPERIMENT, uri)
        for path, log, digest in parsed:
            existing = client.search_runs([experiment_id], filter_string=f"tags.log_sha256 = '{digest}'", max_results=1)
            if existing:
                results.append(Ingested(path, existing[0].info.run_id, created=False))
                continue
            tags = log_tags(log, digest, path.name, track_id or log.hyperparameters.get("TRACK"))
            run = client.create_run(experiment_id, tags={"log_sha256": digest}, run_name=tags.get("mlflow.runName"))
            run_id = run.info.run_id
            try:
                now_ms = int(time.time() * 1000)
                _log_batch(
                    client,
                    run_id,
                    metrics=[Metric(k, v, now_ms, step) for k, v, step in log_metrics(log)],
                    params=[Param(k, v) for k, v in log_params(log).items()],
                    tags=[RunTag(k, v) for k, v in tags.items() if k != "log_sha256"],
                )
                client.log_artifact(run_id, str(path), artifact_path=LOG_ARTIFACT_DIR)
                model = find_artifact(path, log.run_id)
                if model is not None:
                    client.log_artifact(run_id, str(model), artifact_path=MODEL_ARTIFACT_DIR)
                client.set_terminated(run_id, "FINISHED")
            except Exception:
                # A half-ingested run must not satisfy the next lookup by log_sha256: remove it, then re-raise.
                client.delete_run(run_id)
                raise
            results.append(Ingested(path, run_id, created=True))
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
    with _quiet_mlflow():
        client = _client(uri)
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
    with _quiet_mlflow():
        client = _client(uri)
        experiment_id = _experiment_id(client, VERDICTS_EXPERIMENT, uri)
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

"""`submit track LOG...`: ingest training logs into MLflow runs (idempotent)."""

from __future__ import annotations

import json
import sys

import click

from tools.records.model import RecordError


@click.command(name="track")
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--track", "track_id", default=None, help="Tag the runs with this track id (e.g. track_cpu_shakespeare).")
@click.option(
    "--tracking-uri",
    default=None,
    metavar="URI",
    help="MLflow store. Default: $MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db (artifacts in <repo>/mlartifacts/).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def command(logs: tuple[str, ...], track_id: str | None, tracking_uri: str | None, as_json: bool) -> None:
    """Ingest training logs (logs/<RUN_ID>.txt) into MLflow, one run per training run.

    \b
    Each run (experiment "training", or $MLFLOW_EXPERIMENT_NAME) gets:
      params   seed, hp.<KEY> hyperparameters, hardware.*, software.*, dataset.* hashes, val_tokens, val_bytes
      metrics  train_loss / val_loss / val_bpb per step; final val_bpb, val_loss (one step past the last),
               train_time_s, eval_time_s, bytes_total, model_bytes, code_bytes, steps
      tags     log_sha256, training_key, run_id, code_sha256, track (--track, else the log's TRACK), log_name
      status   FINISHED with the final score line, else FAILED; start and end times from the log
      artifacts the log, and logs/<RUN_ID>/final_model.int8.ptz when it exists
    A log already ingested (same sha256), or a run the trainer tracked live (MLFLOW_TRACKING_URI set while
    training), is found again and completed, not duplicated: running this twice is safe.
    Every log is read before anything is written; one unreadable log ingests nothing.

    \b
    Examples:
      submit track logs/*.txt --track track_cpu_shakespeare
      MLFLOW_TRACKING_URI=http://mlflow:5000 submit track logs/run42.txt --json
      mlflow ui --backend-store-uri sqlite:///mlflow.db     # then open the URL the command printed

    \b
    Output: one line per log (new / existing, MLflow run id, log), then how to open the runs in the MLflow UI
    (its GenAI view is the default); --json: {"runs": [{path, run_id, created}]}.
    Exit codes: 0 ingested, 2 unreadable log or unusable store (one line: error: <where>: <what>).
    """
    from tools.submit.tracking import ingest, resolve_tracking_uri, ui_hint

    try:
        results = ingest(list(logs), tracking_uri, track_id=track_id)
    except RecordError as problem:
        click.echo(f"error: {problem.where}: {problem.message}", err=True)
        sys.exit(2)
    except Exception as problem:  # MlflowException, sqlite errors: the store, not the log, is the problem
        click.echo(f"error: tracking store: {type(problem).__name__}: {str(problem).splitlines()[0] if str(problem) else ''}", err=True)
        sys.exit(2)
    if as_json:
        runs = [{"path": str(r.path), "run_id": r.run_id, "created": r.created} for r in results]
        click.echo(json.dumps({"runs": runs}, indent=2))
        return
    for result in results:
        click.echo(f"{'new     ' if result.created else 'existing'} {result.run_id}  {result.path}")
    click.echo(ui_hint(resolve_tracking_uri(tracking_uri), results[0].experiment_id))

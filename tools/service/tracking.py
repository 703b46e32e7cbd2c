"""Every service run is an MLflow run: one experiment per participant (`service-<token name>`), the same metric
names as a training run (tools.submit.tracking), the service's val_bpb as `val_bpb` and the code's own number as
`reported_val_bpb`, the code and its last output lines as artifacts, status and times from the run itself.

Idempotent: a run is found again by its `service_run` tag (`<owner>/run-N`) and never logged twice. Tracking is
best effort: the engine logs a warning when MLflow fails, and the run's verdict stands.
"""

from __future__ import annotations

from tools.service.outcome import SUCCEEDED
from tools.service.store import Run
from tools.submit import tracking

SERVICE_RUN_TAG = "service_run"


def experiment_name(owner: str) -> str:
    return f"service-{owner}"


def run_metrics(run: Run) -> dict[str, float]:
    """The run's numbers under the trainer's names (val_bpb is the service's; the code's is reported_val_bpb)."""
    result = run.result or {}
    values = {"val_bpb": run.val_bpb, "reported_val_bpb": result.get("reported_val_bpb"),
              "steps": result.get("steps"), "train_time_s": result.get("training_s"),
              "eval_time_s": result.get("eval_s"), "wall_time_s": result.get("wall_s")}
    return {name: float(value) for name, value in values.items() if isinstance(value, (int, float))
            and not isinstance(value, bool)}


def track_run(run: Run, tracking_uri: str | None = None) -> str:
    """Log a finished run (or find it again); returns the MLflow run id."""
    uri = tracking.resolve_tracking_uri(tracking_uri)
    key = f"{run.owner}/{run.label}"
    with tracking.quiet_mlflow():
        client = tracking.mlflow_client(uri)
        experiment_id = tracking.ensure_experiment(client, experiment_name(run.owner), uri)
        found = client.search_runs([experiment_id], filter_string=f"tags.{SERVICE_RUN_TAG} = '{key}'", max_results=1)
        if found:
            return found[0].info.run_id
        started = run.started_at or run.created_at
        created = client.create_run(
            experiment_id, start_time=int(started * 1000), run_name=f"{run.label} {run.name or ''}".strip(),
            tags={SERVICE_RUN_TAG: key, "owner": run.owner, "code_sha256": run.code_sha256,
                  "service_status": run.status, "reason": (run.reason or "")[:4000]})
        run_id = created.info.run_id
        client.log_param(run_id, "code_sha256", run.code_sha256)
        client.log_param(run_id, "name", run.name or "")
        for name, value in run_metrics(run).items():
            client.log_metric(run_id, name, value, step=0)
        client.log_text(run_id, run.code, "code/train.py")
        tail = (run.result or {}).get("output_tail") or []
        client.log_text(run_id, "\n".join(str(line) for line in tail) + "\n", "output/last_lines.txt")
        ended = run.finished_at or started
        client.set_terminated(run_id, "FINISHED" if run.status == SUCCEEDED else "FAILED",
                              end_time=int(ended * 1000))
    return run_id

"""MLflow runs for the seeds `verify reproduce` re-ran: the same ingestion as any training log, tagged with the
record they reproduce. Lives in the product's layer (tools.submit); the judge receives it as a callable from its
command line, so tools.verify never imports tools.submit."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tools.submit import tracking


def ingest_reproduced_logs(logs: Mapping[int, Path], *, tags: Mapping[str, str], track_id: str | None = None,
                           tracking_uri: str | None = None) -> list[str]:
    """Ingest each reproduced seed's log (one run per log, found again if already there) and tag it with `tags`
    and its seed."""
    run_ids = list(tracking.ingest_logs([Path(p) for p in logs.values()], tracking_uri, track_id=track_id))
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking.resolve_tracking_uri(tracking_uri))
    for seed, run_id in zip(logs, run_ids, strict=True):
        for key, value in {**tags, "reproduced_seed": str(seed)}.items():
            client.set_tag(run_id, key, value)
    return run_ids

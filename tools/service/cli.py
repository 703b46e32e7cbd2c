"""`submit serve`: start the run service, and `submit serve token create|list|revoke` to manage its tokens.

Exit codes: 0 ok (the server ran until stopped), 2 bad usage or the service cannot start here (one line:
`error: <where>: <what>`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path

import click

from tools.service.config import Budget, ServiceConfig, default_state_dir, default_time_budget

PATH = click.Path(path_type=Path, file_okay=False)


def _fail(where: str, what: str) -> None:
    click.echo(f"error: {where}: {what}", err=True)
    sys.exit(2)


def _store(state_dir: Path):
    from tools.service.engine import state_dir_ready
    from tools.service.store import Store

    return Store(state_dir_ready(state_dir) / "service.db")


@click.group(name="serve", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Runs executed at the same time (each gets the whole CPU budget of its sandbox).")
@click.option("--budget-runs", default=50, show_default=True, type=click.IntRange(1),
              help="Runs a token may submit per budget window.")
@click.option("--budget-hours", default=3.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Hours of run time a token may use per budget window (a queued run reserves its time limit).")
@click.option("--budget-window-hours", default=24.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="The rolling window both budgets count over.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds of training per run (prepare.TIME_BUDGET) [default: 180, or $PG_SERVICE_TIME_BUDGET].")
@click.option("--state-dir", type=PATH, default=None,
              help="Database, runs and dataset [default: <repo>/logs/service, or $PG_SERVICE_DIR].")
@click.option("--dataset-dir", type=PATH, default=None,
              help="A byte dataset folder [default: <state-dir>/data/shakespeare_bytes, built on first start].")
@click.option("--unisolated", is_flag=True,
              help="Run submissions WITHOUT the sandbox (where bubblewrap cannot run): they can read everything.")
@click.option("--no-track", is_flag=True,
              help="Do not log runs to MLflow (default: one MLflow run per service run, experiment service-<name>, "
                   "in $MLFLOW_TRACKING_URI or the repository's mlflow.db).")
@click.option("--records-dir", type=PATH, default=None,
              help="Where POST /runs/{id}/submit assembles record folders [default: <state-dir>/records]; the "
                   "repository's records/ puts them where a pull request wants them.")
@click.option("--broker", metavar="URL", default=None,
              help="Run on Celery workers through this Redis broker (e.g. redis://127.0.0.1:6379/0) instead of "
                   "this process's --workers; start workers with `submit serve worker --broker URL`.")
@click.option("--worker-timeout", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="With --broker: a running run whose worker sent no heartbeat for this many seconds is failed.")
@click.pass_context
def group(ctx: click.Context, host: str, port: int, workers: int, budget_runs: int, budget_hours: float,
          budget_window_hours: float, time_budget: float | None, state_dir: Path | None, dataset_dir: Path | None,
          unisolated: bool, no_track: bool, records_dir: Path | None, broker: str | None,
          worker_timeout: float) -> None:
    """Run the run service: participants POST training code, the service runs and scores it (docs/SERVICE.md).

    \b
    Examples:
      submit serve token create alice          # prints alice's token once; only its hash is stored
      submit serve --port 8000 --workers 1     # then open http://127.0.0.1:8000/ (status) and /docs (API)

    \b
    On several machines (Celery workers through a Redis broker):
      submit serve --broker redis://10.0.0.5:6379/0            # the head: API, database, budgets, MLflow
      submit serve worker --broker redis://10.0.0.5:6379/0     # on each worker machine, one run at a time
    """
    ctx.ensure_object(dict)
    ctx.obj["state_dir"] = state_dir or default_state_dir()
    if ctx.invoked_subcommand is not None:
        return
    config = ServiceConfig(
        state_dir=ctx.obj["state_dir"], dataset_dir=dataset_dir or ctx.obj["state_dir"] / "data" / "shakespeare_bytes",
        time_budget_s=time_budget or default_time_budget(), workers=workers, unisolated=unisolated,
        records_dir=records_dir,
        budget=Budget(runs=budget_runs, hours=budget_hours, window_hours=budget_window_hours))
    serve(config, host, port, track=not no_track, broker=broker, worker_timeout_s=worker_timeout)


def _prepare_dataset(config: ServiceConfig) -> None:
    from tools.records.paths import repo_root
    from tools.service.dataset import ensure_shakespeare_bytes

    try:
        ensure_shakespeare_bytes(config.dataset_dir, repo_root() / "data" / "cache",
                                 log=lambda line: click.echo(line, err=True))
    except Exception as problem:  # the dataset is needed before anything can be scored
        _fail(str(config.dataset_dir), f"cannot prepare the dataset: {problem}")


def _refuse_without_sandbox(config: ServiceConfig) -> None:
    from tools.verify.sandbox import UNISOLATED_WARNING, cli_refusal

    refusal = cli_refusal(config.unisolated)
    if refusal:
        click.echo(refusal, err=True)
        sys.exit(2)
    if config.unisolated:
        click.echo(UNISOLATED_WARNING, err=True)


def serve(config: ServiceConfig, host: str, port: int, track: bool = True, broker: str | None = None,
          worker_timeout_s: float = 60.0) -> None:
    import uvicorn

    from tools.service.api import create_app
    from tools.service.engine import Engine

    if broker is None:  # the head of a cluster runs nothing itself
        _refuse_without_sandbox(config)
    store = _store(config.state_dir)
    lock = open(config.state_dir / "service.lock", "w")  # held (and locked) for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _fail(str(config.state_dir), "another service is running on this state folder")
    _prepare_dataset(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tracker = None
    if track:
        from tools.service.tracking import track_run

        tracker = track_run
    from tools.service.submission import RecordMaker

    if broker is None:
        engine = Engine(config, store, track=tracker, make_record=RecordMaker(config))
        where = f"{config.workers} local worker(s)"
    else:
        from tools.service.cluster import ClusterEngine

        engine = ClusterEngine(config, store, broker, track=tracker, stale_after_s=worker_timeout_s,
                               make_record=RecordMaker(config))
        where = f"Celery workers via {_redacted(broker)}"
    app = create_app(config, store, engine)
    click.echo(f"run service: http://{host}:{port}/ (API: /docs); state {config.state_dir}; training budget "
               f"{config.time_budget_s:g} s; {where}; pid {os.getpid()}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


def _redacted(url: str) -> str:
    """The broker URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@group.command(name="worker")
@click.option("--broker", metavar="URL", required=True, help="The head's Redis broker, e.g. redis://HOST:6379/0.")
@click.option("--name", default=None, help="This worker's name in runs and on the status page [default: "
                                           "pg-worker-<hostname>].")
@click.option("--dataset-dir", type=PATH, default=None,
              help="This machine's byte dataset [default: <state-dir>/data/shakespeare_bytes, built on first start]; "
                   "it must equal the head's (checked by sha256 for every run).")
@click.option("--heartbeat", "heartbeat_s", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between the heartbeats a running run sends the head.")
@click.option("--unisolated", is_flag=True, help="Run submissions WITHOUT the sandbox (loud; only where bubblewrap "
                                                 "cannot run).")
@click.pass_context
def worker(ctx: click.Context, broker: str, name: str | None, dataset_dir: Path | None, heartbeat_s: float,
           unisolated: bool) -> None:
    """Run submissions sent by a head (`submit serve --broker URL`) on this machine, one at a time, until stopped.

    The worker runs and scores each run in the sandbox exactly as the one-machine service does; its run folders
    live under --state-dir (the group option, e.g. `submit serve --state-dir DIR worker ...`).
    """
    from tools.service.cluster import (
        WorkerContext,
        dataset_fingerprint,
        default_worker_name,
        make_app,
        run_worker,
        sandbox_executor,
    )
    from tools.service.engine import state_dir_ready

    state_dir = state_dir_ready(ctx.obj["state_dir"])
    config = ServiceConfig(state_dir=state_dir, dataset_dir=dataset_dir or state_dir / "data" / "shakespeare_bytes",
                           unisolated=unisolated)
    _refuse_without_sandbox(config)
    _prepare_dataset(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    context = WorkerContext(config, name or default_worker_name(), heartbeat_s, dataset_fingerprint(config.dataset_dir),
                            sandbox_executor(config))
    click.echo(f"run service worker {context.name}: broker {_redacted(broker)}; state {state_dir}; pid {os.getpid()}",
               err=True)
    run_worker(make_app(broker), context)


@group.group(name="token")
def token() -> None:
    """Manage bearer tokens (stored hashed in the state folder's database)."""


@token.command(name="create")
@click.argument("name")
@click.pass_context
def token_create(ctx: click.Context, name: str) -> None:
    """Create a token for NAME and print it (once: only its sha256 is kept)."""
    if not name.strip() or len(name) > 64:
        _fail("NAME", "must be 1 to 64 characters")
    try:
        click.echo(_store(ctx.obj["state_dir"]).create_token(name))
    except ValueError as problem:
        _fail("NAME", str(problem))


@token.command(name="list")
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """List token names (never the tokens)."""
    for row in _store(ctx.obj["state_dir"]).list_tokens():
        click.echo(f"{row['name']}\t{'revoked' if row['revoked_at'] else 'active'}")


@token.command(name="revoke")
@click.argument("name")
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke NAME's token: its requests get 401 from now on (its runs are kept)."""
    if not _store(ctx.obj["state_dir"]).revoke_token(name):
        _fail("NAME", f"no active token named {name!r}")
    click.echo(f"revoked {name}")

"""The HTTP API (FastAPI; the OpenAPI page is at /docs): routes parse, authenticate, call the engine, shape JSON.

    POST /run            {"train_code": str, "name": str?}  -> 202 {"run_id", "status", "queue_position"}
    GET  /runs/{run_id}  one of the caller's runs
    GET  /runs           all of the caller's runs
    GET  /budget         the caller's budget
    POST /runs/{run_id}/submit  {"author": str, ...} -> 202: the run's code re-run on the record seeds, then a record
    GET  /submissions/{submission_id}, GET /submissions   the caller's record submissions
    GET  /               the status page (queue, runs, scores)

Every error is JSON with an "error" line: 401 no or unknown token, 404 no such run, 409 an Idempotency-Key reused
with other code, 413 code over the size limit, 422 a bad body (naming the field), 429 over budget (naming the
limit and when it resets, with Retry-After).
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations, and the dependency
# alias `Caller` is local to create_app, so they must be evaluated where the routes are defined.
import contextlib
import datetime as dt
import math
import re
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tools.service.config import ServiceConfig
from tools.service.engine import Engine, OverBudget
from tools.service.page import render_status_page
from tools.service.store import Conflict, Run, Store, Submission

RUN_ID = re.compile(r"^run-(\d{1,9})$")
SUBMISSION_ID = re.compile(r"^sub-(\d{1,9})$")
MAX_NAME_CHARS = 200
MAX_KEY_CHARS = 200


class RunRequest(BaseModel):
    train_code: str = Field(description="the training file: Python that imports `prepare` (docs/SERVICE.md)")
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS, description="a label for the run")


class RecordRequest(BaseModel):
    author: str = Field(min_length=1, max_length=64, description="the record's author, as on the leaderboard")
    github_id: str | None = Field(default=None, max_length=64, description="GitHub user name [default: author]")
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS, description="the record's name")
    blurb: str | None = Field(default=None, max_length=2000, description="what the model is, in a few sentences")


class Accepted(BaseModel):
    run_id: str
    status: str
    queue_position: int | None


class ApiError(Exception):
    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(error)
        self.status, self.body, self.headers = status, {"error": error, **extra}, headers or {}


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _finite(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None


def run_view(run: Run, queue_position: int | None) -> dict:
    """The JSON of one run (pure)."""
    result = run.result or {}
    evaluation = result.get("evaluation") or {}
    return {
        "run_id": run.label, "name": run.name, "status": run.status, "queue_position": queue_position,
        "val_bpb": _finite(run.val_bpb), "reported": result.get("reported"),
        "reported_val_bpb": result.get("reported_val_bpb"), "reported_mismatch": bool(result.get("reported_mismatch")),
        "flags": result.get("flags", []), "reason": run.reason,
        "steps": result.get("steps"), "training_seconds": result.get("training_s"),
        "reported_training_seconds": result.get("reported_training_s"), "eval_seconds": result.get("eval_s"),
        "wall_seconds": result.get("wall_s"), "checks": evaluation.get("checks", []),
        "scoring": {k: evaluation.get(k) for k in ("calls", "rounds", "probes", "windows", "rows_per_call")},
        "stderr_tail": result.get("output_tail", []), "isolation": result.get("isolation"),
        "created_at": iso(run.created_at), "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "code_sha256": run.code_sha256, "code_bytes": len(run.code.encode("utf-8")), "time_limit_seconds": run.limit_s,
    }


def submission_view(submission: Submission, runs: list[Run]) -> dict:
    """The JSON of one record submission (pure): its seed runs, then the record and the judge's verdict."""
    return {
        "submission_id": submission.label, "run_id": f"run-{submission.source_number}", "status": submission.status,
        "seeds": [{"seed": run.seed, "run_id": run.label, "status": run.status, "val_bpb": _finite(run.val_bpb),
                   "reason": run.reason} for run in runs],
        "reason": submission.reason, "record_path": submission.record_path, "verdict": submission.verdict,
        "author": submission.details.get("author"), "name": submission.details.get("name"),
        "created_at": iso(submission.created_at), "finished_at": iso(submission.finished_at),
    }


class BodyLimit:
    """Refuse a request body over `max_bytes` with 413 before it is read into memory (declared or streamed)."""

    class TooLarge(HTTPException):  # FastAPI turns other errors while reading a body into 400
        def __init__(self, max_bytes: int):
            super().__init__(413, f"request body over {max_bytes} bytes")

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyLimit.TooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, send) -> None:
        response = JSONResponse({"error": f"request body over {self.max_bytes} bytes"}, status_code=413)
        await response({"type": "http"}, None, send)


def create_app(config: ServiceConfig, store: Store, engine: Engine, *, start_engine: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        if start_engine:
            engine.start()
        try:
            yield
        finally:
            if start_engine:
                engine.stop()

    app = FastAPI(title="parameter golf run service", lifespan=lifespan,
                  description="Submit training code; the service runs it in the sandbox, scores it, tracks runs.")
    # JSON escaping can triple code's size (\uXXXX); the exact limit on the code itself is checked after parsing.
    app.add_middleware(BodyLimit, max_bytes=6 * config.max_code_bytes + 64 * 1024)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, problem: ApiError):
        return JSONResponse(problem.body, status_code=problem.status, headers=problem.headers)

    @app.exception_handler(StarletteHTTPException)  # 404/405 of unknown routes too
    async def http_error(_request: Request, problem: StarletteHTTPException):
        return JSONResponse({"error": str(problem.detail)}, status_code=problem.status_code,
                            headers=getattr(problem, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, problem: RequestValidationError):
        fields = {}
        for error in problem.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            fields.setdefault(where, error.get("msg", "invalid"))
        summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
        return JSONResponse({"error": f"invalid request: {summary}", "fields": fields,
                             "detail": jsonable_encoder(problem.errors(), exclude={"ctx", "input"})},
                            status_code=422)

    def caller(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        owner = store.owner_of(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if owner is None:
            raise ApiError(401, "missing or unknown bearer token (Authorization: Bearer TOKEN; "
                                "`submit serve token create NAME` makes one)", {"WWW-Authenticate": "Bearer"})
        return owner

    Caller = Annotated[str, Depends(caller)]

    def over_budget(owner: str, over: OverBudget) -> ApiError:
        state = over.state
        retry = max(1, math.ceil(state.resets_at - engine.clock())) if state.resets_at else None
        return ApiError(429, f"over budget: {state.message}", {"Retry-After": str(retry)} if retry else {},
                        limit=state.limit, resets_at=iso(state.resets_at), retry_after_seconds=retry,
                        budget=engine.budget(owner))

    @app.post("/run", status_code=202, response_model=Accepted,
              responses={401: {}, 409: {}, 413: {}, 422: {}, 429: {}})
    def submit_run(body: RunRequest, owner: Caller,
                   idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY_CHARS)] = None) -> Accepted:
        """Queue a training run. A retry with the same Idempotency-Key returns the first run, never a second."""
        size = len(body.train_code.encode("utf-8"))
        if size > config.max_code_bytes:
            raise ApiError(413, f"train_code is {size} bytes; the limit is {config.max_code_bytes}",
                           limit_bytes=config.max_code_bytes)
        try:
            submitted = engine.submit(owner, body.train_code, body.name, idempotency_key)
        except Conflict as conflict:
            raise ApiError(409, str(conflict)) from None
        except OverBudget as over:
            raise over_budget(owner, over) from None
        # As accepted: a new run is queued at its place even if a free worker claimed it since; a replayed
        # Idempotency-Key gets the run as it is now.
        run = submitted.run if submitted.created else store.get(owner, submitted.run.number)
        return Accepted(run_id=run.label, status=run.status, queue_position=submitted.queue_position)

    @app.get("/runs/{run_id}")
    def get_run(run_id: str, owner: Caller) -> dict:
        """One of the caller's runs: status, the service's val_bpb, what the code reported, checks, output tail."""
        match = RUN_ID.match(run_id)
        run = store.get(owner, int(match.group(1))) if match else None
        if run is None:
            raise ApiError(404, f"no run {run_id!r} for this token (run ids are run-0, run-1, ... per token)")
        return run_view(run, store.queue_position(run.id))

    @app.get("/runs")
    def list_runs(owner: Caller) -> dict:
        runs = store.runs_of(owner)
        positions = {run.id: position for position, run in enumerate(store.queue(), start=1)}
        return {"owner": owner, "runs": [run_view(run, positions.get(run.id)) for run in runs]}

    @app.post("/runs/{run_id}/submit", status_code=202, responses={401: {}, 404: {}, 409: {}, 422: {}, 429: {}})
    def submit_record(run_id: str, body: RecordRequest, owner: Caller) -> dict:
        """Turn a succeeded run into a record: its code runs again on each of the record seeds (TORCH_SEED, through
        the same queue and budget), then the service assembles the record folder and judges it like any record.
        Asking again while that submission runs returns it."""
        match = RUN_ID.match(run_id)
        if match is None:
            raise ApiError(404, f"no run {run_id!r} for this token (run ids are run-0, run-1, ... per token)")
        details = {"author": body.author, "github_id": body.github_id or body.author,
                   "name": body.name, "blurb": body.blurb}
        try:
            submission, runs, created = engine.submit_record(owner, int(match.group(1)), details)
        except LookupError as missing:
            raise ApiError(404, str(missing)) from None
        except ValueError as not_eligible:
            raise ApiError(409, str(not_eligible)) from None
        except OverBudget as over:
            raise over_budget(owner, over) from None
        return {**submission_view(submission, runs), "created": created}

    @app.get("/submissions/{submission_id}")
    def get_submission(submission_id: str, owner: Caller) -> dict:
        """One of the caller's record submissions: its seed runs, the record folder and the judge's verdict."""
        match = SUBMISSION_ID.match(submission_id)
        submission = store.submission(owner, int(match.group(1))) if match else None
        if submission is None:
            raise ApiError(404, f"no submission {submission_id!r} for this token (sub-0, sub-1, ... per token)")
        return submission_view(submission, store.seed_runs(submission.id))

    @app.get("/submissions")
    def list_submissions(owner: Caller) -> dict:
        return {"owner": owner, "submissions": [submission_view(s, store.seed_runs(s.id))
                                                for s in store.submissions_of(owner)]}

    @app.get("/budget")
    def get_budget(owner: Caller) -> dict:
        summary = engine.budget(owner)
        summary["resets_at"] = iso(summary["resets_at"])
        summary["oldest_in_window_at"] = iso(summary["oldest_in_window_at"])
        return {"owner": owner, **summary}

    @app.get("/", response_class=HTMLResponse)
    def status_page() -> str:
        return render_status_page(store.queue(), store.recent(200), config, engine.running,
                                  store.recent_submissions(20))

    return app

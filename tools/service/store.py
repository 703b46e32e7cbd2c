"""The service's state in SQLite: tokens (only their sha256 is stored) and runs (the code, status, result).

One short connection per operation (WAL mode), so the API's threads and the workers never share one. Writes that
must be atomic together (numbering a token's runs, its budget, its idempotency keys) happen inside one
`BEGIN IMMEDIATE` transaction. Times are epoch seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tools.service.budget import Usage
from tools.service.outcome import FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED

TOKEN_PREFIX = "pgs_"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL REFERENCES tokens(name),
    number INTEGER NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    code TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    idempotency_key TEXT,
    limit_s REAL NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    val_bpb REAL,
    reason TEXT,
    result TEXT,
    UNIQUE (owner, number),
    UNIQUE (owner, idempotency_key)
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, id);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL REFERENCES tokens(name),
    number INTEGER NOT NULL,
    source_number INTEGER NOT NULL,
    status TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    reason TEXT,
    record_path TEXT,
    verdict TEXT,
    UNIQUE (owner, number)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Conflict(Exception):
    """An Idempotency-Key reused with different code."""


@dataclass(frozen=True)
class Run:
    id: int
    owner: str
    number: int
    name: str | None
    status: str
    code: str
    code_sha256: str
    idempotency_key: str | None
    limit_s: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    val_bpb: float | None
    reason: str | None
    result: dict | None
    seed: int | None = None  # TORCH_SEED for the run's child (a record's seed run), else unset
    submission_id: int | None = None  # the record submission this run is a seed run of

    @property
    def label(self) -> str:
        return f"run-{self.number}"

    @property
    def charged_s(self) -> float:
        """Run time counted against the budget: the whole limit until it finishes, then what it used."""
        if self.status in FINISHED and self.started_at is not None and self.finished_at is not None:
            return min(self.limit_s, max(0.0, self.finished_at - self.started_at))
        if self.status in FINISHED:
            return 0.0  # never started
        return self.limit_s


@dataclass(frozen=True)
class Submission:
    """A run on its way to a record: its code re-run on the track's seeds, then assembled and judged."""

    id: int
    owner: str
    number: int
    source_number: int
    status: str  # running, judged, failed
    details: dict  # author, github_id, name, blurb, seeds
    created_at: float
    finished_at: float | None
    reason: str | None
    record_path: str | None
    verdict: dict | None

    @property
    def label(self) -> str:
        return f"sub-{self.number}"


def _row_to_submission(row: sqlite3.Row) -> Submission:
    values = dict(row)
    values["details"] = json.loads(values["details"])
    values["verdict"] = json.loads(values["verdict"]) if values["verdict"] else None
    return Submission(**values)


# Columns added after the first release: (table, column, declaration), added to older databases on open.
_ADDED_COLUMNS = (("runs", "seed", "INTEGER"), ("runs", "submission_id", "INTEGER REFERENCES submissions(id)"))


class Submitted(NamedTuple):
    run: Run
    created: bool
    queue_position: int | None  # at acceptance (a free worker may claim it right after)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row_to_run(row: sqlite3.Row) -> Run:
    values = dict(row)
    values["result"] = json.loads(values["result"]) if values["result"] else None
    return Run(**values)


class Store:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer (API threads beside workers)
            db.executescript(SCHEMA)
            for table, column, declaration in _ADDED_COLUMNS:
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        finally:
            db.close()

    @contextlib.contextmanager
    def _connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # --- tokens ---------------------------------------------------------------------------------------------------

    def create_token(self, name: str) -> str:
        """A new random token for `name` (printed once; only its hash is kept). ValueError if the name exists."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._connect(immediate=True) as db:
            if db.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"a token named {name!r} exists already")
            db.execute("INSERT INTO tokens (name, token_sha256, created_at) VALUES (?, ?, ?)",
                       (name, hash_token(token), self.clock()))
        return token

    def revoke_token(self, name: str) -> bool:
        with self._connect(immediate=True) as db:
            return db.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                              (self.clock(), name)).rowcount == 1

    def list_tokens(self) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT name, created_at, revoked_at FROM tokens ORDER BY created_at").fetchall()
        return [dict(row) for row in rows]

    def owner_of(self, token: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT name FROM tokens WHERE token_sha256 = ? AND revoked_at IS NULL",
                             (hash_token(token),)).fetchone()
        return row["name"] if row else None

    # --- runs -----------------------------------------------------------------------------------------------------

    def submit(self, owner: str, code: str, name: str | None, idempotency_key: str | None, limit_s: float,
               admit: Callable[[list[Usage]], None]) -> Submitted:
        """Queue a run: (run, True, its place in the queue). With a known idempotency key: (that run, False, its
        place now), nothing new (Conflict if the code differs). `admit(usage)` sees the token's usage inside the
        transaction and raises to refuse."""
        code_sha256 = hashlib.sha256(code.encode()).hexdigest()
        with self._connect(immediate=True) as db:
            if idempotency_key is not None:
                row = db.execute("SELECT * FROM runs WHERE owner = ? AND idempotency_key = ?",
                                 (owner, idempotency_key)).fetchone()
                if row is not None:
                    if row["code_sha256"] != code_sha256:
                        raise Conflict(f"Idempotency-Key {idempotency_key!r} was used for run-{row['number']} "
                                       "with different code")
                    run = _row_to_run(row)
                    return Submitted(run, False, self._position(db, run.id))
            admit(self._usage(db, owner))
            number = db.execute("SELECT COALESCE(MAX(number) + 1, 0) FROM runs WHERE owner = ?",
                                (owner,)).fetchone()[0]
            cursor = db.execute(
                "INSERT INTO runs (owner, number, name, status, code, code_sha256, idempotency_key, limit_s, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (owner, number, name, QUEUED, code, code_sha256, idempotency_key, limit_s, self.clock()))
            row = db.execute("SELECT * FROM runs WHERE id = ?", (cursor.lastrowid,)).fetchone()
            return Submitted(_row_to_run(row), True, self._position(db, cursor.lastrowid))

    def submit_record(self, owner: str, source_number: int, seeds: list[int], details: dict, limit_s: float,
                      admit: Callable[[list[Usage]], None]) -> tuple[Submission, list[Run]]:
        """A submission of run `source_number` (which must have succeeded: LookupError / ValueError otherwise) and
        one queued seed run per seed, all in one transaction; `admit(usage)` is asked before each seed run, so the
        budget holds for all of them or none is queued."""
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT * FROM runs WHERE owner = ? AND number = ?", (owner, source_number)).fetchone()
            if row is None:
                raise LookupError(f"no run run-{source_number} for this token")
            source = _row_to_run(row)
            if source.status != SUCCEEDED:
                raise ValueError(f"run-{source_number} is {source.status}: only a succeeded run can become a record")
            now = self.clock()
            number = db.execute("SELECT COALESCE(MAX(number) + 1, 0) FROM submissions WHERE owner = ?",
                                (owner,)).fetchone()[0]
            cursor = db.execute(
                "INSERT INTO submissions (owner, number, source_number, status, details, created_at) "
                "VALUES (?, ?, ?, 'running', ?, ?)", (owner, number, source_number, json.dumps(details), now))
            submission_id = cursor.lastrowid
            runs = []
            for seed in seeds:
                admit(self._usage(db, owner))
                run_number = db.execute("SELECT COALESCE(MAX(number) + 1, 0) FROM runs WHERE owner = ?",
                                        (owner,)).fetchone()[0]
                inserted = db.execute(
                    "INSERT INTO runs (owner, number, name, status, code, code_sha256, limit_s, created_at, seed, "
                    "submission_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (owner, run_number, f"sub-{number}: run-{source_number} seed {seed}", QUEUED, source.code,
                     source.code_sha256, limit_s, now, seed, submission_id))
                runs.append(_row_to_run(db.execute("SELECT * FROM runs WHERE id = ?",
                                                   (inserted.lastrowid,)).fetchone()))
            submission = db.execute("SELECT * FROM submissions WHERE id = ?", (submission_id,)).fetchone()
            return _row_to_submission(submission), runs

    def submission(self, owner: str, number: int) -> Submission | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM submissions WHERE owner = ? AND number = ?", (owner, number)).fetchone()
        return _row_to_submission(row) if row else None

    def submission_by_id(self, submission_id: int) -> Submission | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM submissions WHERE id = ?", (submission_id,)).fetchone()
        return _row_to_submission(row) if row else None

    def submissions_of(self, owner: str) -> list[Submission]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM submissions WHERE owner = ? ORDER BY number", (owner,)).fetchall()
        return [_row_to_submission(row) for row in rows]

    def recent_submissions(self, limit: int = 20) -> list[Submission]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM submissions ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_row_to_submission(row) for row in rows]

    def seed_runs(self, submission_id: int) -> list[Run]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE submission_id = ? ORDER BY id", (submission_id,)).fetchall()
        return [_row_to_run(row) for row in rows]

    def running_submissions(self) -> list[Submission]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM submissions WHERE status = 'running' ORDER BY id").fetchall()
        return [_row_to_submission(row) for row in rows]

    def finish_submission(self, submission_id: int, status: str, reason: str, record_path: str | None,
                          verdict: dict | None) -> bool:
        """Close a running submission; False when another thread closed it first (it is decided once)."""
        with self._connect(immediate=True) as db:
            return db.execute(
                "UPDATE submissions SET status = ?, reason = ?, record_path = ?, verdict = ?, finished_at = ? "
                "WHERE id = ? AND status = 'running'",
                (status, reason, record_path, json.dumps(verdict) if verdict else None, self.clock(),
                 submission_id)).rowcount == 1

    def _usage(self, db: sqlite3.Connection, owner: str) -> list[Usage]:
        rows = db.execute("SELECT * FROM runs WHERE owner = ?", (owner,)).fetchall()
        return [Usage(run.created_at, run.charged_s) for run in map(_row_to_run, rows)]

    def usage(self, owner: str) -> list[Usage]:
        with self._connect() as db:
            return self._usage(db, owner)

    def claim_next(self) -> Run | None:
        """The oldest queued run, now marked running; None when the queue is empty."""
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT id FROM runs WHERE status = ? ORDER BY id LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE runs SET status = ?, started_at = ? WHERE id = ?", (RUNNING, self.clock(), row["id"]))
            return _row_to_run(db.execute("SELECT * FROM runs WHERE id = ?", (row["id"],)).fetchone())

    def active(self) -> list[Run]:
        """Queued and running runs, oldest first (what the cluster engine follows)."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE status IN (?, ?) ORDER BY id", (QUEUED, RUNNING)).fetchall()
        return [_row_to_run(row) for row in rows]

    def mark_running(self, run_id: int) -> bool:
        """A queued run a worker has started: running from now. False if it was not queued."""
        with self._connect(immediate=True) as db:
            return db.execute("UPDATE runs SET status = ?, started_at = ? WHERE id = ? AND status = ?",
                              (RUNNING, self.clock(), run_id, QUEUED)).rowcount == 1

    def instance_id(self) -> str:
        """A random id made once per database: it names this service's tasks in a shared broker, so two services
        (or a database made anew) never confuse each other's runs."""
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
            if row is not None:
                return row["value"]
            value = secrets.token_hex(6)
            db.execute("INSERT INTO meta (key, value) VALUES ('instance', ?)", (value,))
            return value

    def finish(self, run_id: int, status: str, reason: str, val_bpb: float | None, result: dict | None) -> None:
        with self._connect(immediate=True) as db:
            db.execute("UPDATE runs SET status = ?, reason = ?, val_bpb = ?, result = ?, finished_at = ? "
                       "WHERE id = ?", (status, reason, val_bpb, json.dumps(result) if result else None,
                                        self.clock(), run_id))

    def fail_interrupted(self, reason: str) -> list[Run]:
        """Runs left `running` by a service that stopped: failed with `reason` (their worker is gone)."""
        with self._connect(immediate=True) as db:
            rows = db.execute("SELECT * FROM runs WHERE status = ?", (RUNNING,)).fetchall()
            db.execute("UPDATE runs SET status = ?, reason = ?, finished_at = ? WHERE status = ?",
                       (FAILED, reason, self.clock(), RUNNING))
        return [_row_to_run(row) for row in rows]

    def get(self, owner: str, number: int) -> Run | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE owner = ? AND number = ?", (owner, number)).fetchone()
        return _row_to_run(row) if row else None

    def runs_of(self, owner: str) -> list[Run]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE owner = ? ORDER BY number", (owner,)).fetchall()
        return [_row_to_run(row) for row in rows]

    def recent(self, limit: int = 100) -> list[Run]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_row_to_run(row) for row in rows]

    def queue(self) -> list[Run]:
        """Queued runs in the order they will start."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE status = ? ORDER BY id", (QUEUED,)).fetchall()
        return [_row_to_run(row) for row in rows]

    def queue_position(self, run_id: int) -> int | None:
        """1 for the next run to start; None when the run is not queued."""
        with self._connect() as db:
            return self._position(db, run_id)

    @staticmethod
    def _position(db: sqlite3.Connection, run_id: int) -> int | None:
        row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or row["status"] != QUEUED:
            return None
        return db.execute("SELECT COUNT(*) FROM runs WHERE status = ? AND id <= ?", (QUEUED, run_id)).fetchone()[0]

"""The service's state (tools/service/store.py) and budgets (budget.py): tokens stored hashed, runs numbered per
token, idempotency keys that never start a second run (also under concurrent retries), budgets over a rolling
window with the time they reset, and recovery of runs whose worker died."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from tools.service import budget
from tools.service.budget import Usage
from tools.service.config import Budget
from tools.service.outcome import FAILED, QUEUED, RUNNING, SUCCEEDED
from tools.service.store import Conflict, Store, hash_token

HOUR = 3600.0


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def allow(_usage):
    return None


@pytest.fixture()
def store(tmp_path):
    return Store(tmp_path / "service.db", clock=Clock())


# --- budget (pure) ------------------------------------------------------------------------------------------------


def test_run_budget_refuses_the_next_run_and_says_when_it_resets():
    policy = Budget(runs=3, hours=100, window_hours=24)
    usage = [Usage(1000.0 + i * 60, 10) for i in range(3)]
    state = budget.check(usage, 2000.0, policy, 10)
    assert not state.ok and state.limit == "runs" and state.runs_used == 3
    assert state.resets_at == 1000.0 + 24 * HOUR  # when the oldest ages out, one more fits
    assert budget.check(usage, 1000.0 + 24 * HOUR + 1, policy, 10).ok
    assert budget.check(usage[:2], 2000.0, policy, 10).ok


def test_hour_budget_counts_reservations_and_finds_the_reset():
    policy = Budget(runs=100, hours=1.0, window_hours=10)
    usage = [Usage(0.0, 1200), Usage(100.0, 1200)]  # 40 minutes used
    assert budget.check(usage, 200.0, policy, 1200).ok  # 60 minutes: fits exactly
    state = budget.check([*usage, Usage(150.0, 1200)], 200.0, policy, 1200)
    assert not state.ok and state.limit == "hours" and state.resets_at == 0.0 + 10 * HOUR
    too_long = budget.check([], 0.0, policy, 2 * HOUR)
    assert not too_long.ok and too_long.resets_at is None and "more than the whole budget" in too_long.message


def test_budget_summary_shape():
    summary = budget.summary([Usage(0.0, 600)], 10.0, Budget(runs=5, hours=2, window_hours=24), 300)
    assert summary["runs"] == {"limit": 5, "used": 1, "remaining": 4}
    assert summary["hours"]["used"] == pytest.approx(600 / HOUR, abs=1e-4) and summary["can_submit"]
    assert summary["resets_at"] is None and summary["oldest_in_window_at"] == 0.0


# --- tokens -------------------------------------------------------------------------------------------------------


def test_tokens_are_stored_hashed_and_can_be_revoked(store, tmp_path):
    token = store.create_token("alice")
    assert token.startswith("pgs_") and len(token) > 40
    assert store.owner_of(token) == "alice" and store.owner_of(token + "x") is None
    with sqlite3.connect(tmp_path / "service.db") as db:
        stored = db.execute("SELECT token_sha256 FROM tokens").fetchone()[0]
        dump = "\n".join(db.iterdump())
    assert stored == hash_token(token) and token not in dump
    with pytest.raises(ValueError, match="exists"):
        store.create_token("alice")
    assert store.revoke_token("alice") and store.owner_of(token) is None and not store.revoke_token("alice")


# --- runs ---------------------------------------------------------------------------------------------------------


def test_runs_are_numbered_per_token_and_queued_in_order(store):
    store.create_token("alice")
    store.create_token("bob")
    a0, _, first = store.submit("alice", "print(1)", None, None, 300, allow)
    b0 = store.submit("bob", "print(2)", "b", None, 300, allow).run
    a1, _, third = store.submit("alice", "print(3)", None, None, 300, allow)
    assert (first, third) == (1, 3)
    assert (a0.label, b0.label, a1.label) == ("run-0", "run-0", "run-1")
    assert [store.queue_position(r.id) for r in (a0, b0, a1)] == [1, 2, 3]
    claimed = store.claim_next()
    assert claimed.id == a0.id and claimed.status == RUNNING and store.queue_position(a0.id) is None
    assert [store.queue_position(r.id) for r in (b0, a1)] == [1, 2]
    store.finish(a0.id, SUCCEEDED, "ok", 1.25, {"val_bpb": 1.25})
    again = store.get("alice", 0)
    assert again.status == SUCCEEDED and again.val_bpb == 1.25 and again.result == {"val_bpb": 1.25}
    assert [r.label for r in store.runs_of("alice")] == ["run-0", "run-1"] and store.get("bob", 1) is None


def test_an_idempotency_key_never_starts_a_second_run(store):
    store.create_token("alice")
    first, created, position = store.submit("alice", "print(1)", None, "key-1", 300, allow)
    retry, created_again, position_again = store.submit("alice", "print(1)", None, "key-1", 300, allow)
    assert created and not created_again and retry.id == first.id and position == position_again == 1
    with pytest.raises(Conflict, match="different code"):
        store.submit("alice", "print(2)", None, "key-1", 300, allow)
    assert len(store.runs_of("alice")) == 1
    store.create_token("bob")
    assert store.submit("bob", "print(1)", None, "key-1", 300, allow)[1]  # keys are per token


def test_concurrent_retries_with_one_key_make_one_run(store):
    store.create_token("alice")
    results, barrier = [], threading.Barrier(8)

    def retry():
        barrier.wait()
        results.append(store.submit("alice", "print(1)", None, "same", 300, allow))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({s.run.id for s in results}) == 1 and sum(s.created for s in results) == 1
    assert len(store.runs_of("alice")) == 1


def test_admission_sees_usage_inside_the_transaction(store):
    store.create_token("alice")
    store.submit("alice", "print(1)", None, None, 300, allow)
    seen = []

    def refuse(usage):
        seen.append(usage)
        raise RuntimeError("over")

    with pytest.raises(RuntimeError):
        store.submit("alice", "print(2)", None, None, 300, refuse)
    assert seen[0] == [Usage(1_000_000.0, 300)] and len(store.runs_of("alice")) == 1


def test_runs_left_running_by_a_dead_service_fail_with_the_reason(tmp_path):
    clock = Clock()
    store = Store(tmp_path / "service.db", clock=clock)
    store.create_token("alice")
    running = store.submit("alice", "print(1)", None, None, 300, allow).run
    store.submit("alice", "print(2)", None, None, 300, allow)
    store.claim_next()
    clock.now += 50
    reopened = Store(tmp_path / "service.db", clock=clock)  # a new process
    lost = reopened.fail_interrupted("worker died")
    assert [r.id for r in lost] == [running.id]
    assert reopened.get("alice", 0).status == FAILED and reopened.get("alice", 0).reason == "worker died"
    assert reopened.get("alice", 1).status == QUEUED
    assert reopened.get("alice", 0).charged_s == 50  # a finished run is charged what it used


def test_a_database_from_before_seeds_and_submissions_gains_their_columns_and_keeps_its_runs(tmp_path):
    path = tmp_path / "service.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE tokens (name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,
                             revoked_at REAL);
        CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, number INTEGER NOT NULL,
            name TEXT, status TEXT NOT NULL, code TEXT NOT NULL, code_sha256 TEXT NOT NULL, idempotency_key TEXT,
            limit_s REAL NOT NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL, val_bpb REAL,
            reason TEXT, result TEXT, UNIQUE (owner, number), UNIQUE (owner, idempotency_key));
        INSERT INTO tokens VALUES ('alice', 'x', 1.0, NULL);
        INSERT INTO runs (owner, number, status, code, code_sha256, limit_s, created_at, val_bpb)
            VALUES ('alice', 0, 'succeeded', 'print(1)', 'h', 100.0, 1.0, 1.5);
    """)
    db.close()
    store = Store(path)
    run = store.get("alice", 0)
    assert (run.status, run.val_bpb, run.seed, run.submission_id) == (SUCCEEDED, 1.5, None, None)
    submission, runs = store.submit_record("alice", 0, [42], {"author": "a"}, 100.0, allow)
    assert [r.seed for r in runs] == [42] and runs[0].submission_id == submission.id
    Store(path)  # opening again adds nothing twice

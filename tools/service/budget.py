"""Budgets (pure): may this token start one more run now, and if not, which limit and when does it reset?

Per token, over a rolling window: at most `runs` submissions, and at most `hours` of run time, where a queued or
running run counts its whole time limit (so a burst of submissions cannot overdraw) and a finished one counts the
time it took. A limit "resets" when enough of the window's usage has aged out for one more run to fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tools.service.config import Budget


@dataclass(frozen=True)
class Usage:
    created_at: float  # epoch seconds
    seconds: float  # run time charged


@dataclass(frozen=True)
class BudgetState:
    ok: bool
    limit: str  # "" or the limit that refuses: "runs" or "hours"
    runs_used: int
    seconds_used: float
    resets_at: float | None  # epoch seconds when one more run fits again (None: it fits now)
    message: str = ""


def in_window(usage: Sequence[Usage], now: float, window_s: float) -> list[Usage]:
    return sorted((u for u in usage if u.created_at > now - window_s), key=lambda u: u.created_at)


def check(usage: Sequence[Usage], now: float, budget: Budget, new_run_s: float) -> BudgetState:
    """Whether one more run charged `new_run_s` seconds fits (see the module docstring)."""
    window_s = budget.window_hours * 3600
    cap_s = budget.hours * 3600
    live = in_window(usage, now, window_s)
    used_s = sum(u.seconds for u in live)
    if new_run_s > cap_s:
        return BudgetState(False, "hours", len(live), used_s, None,
                           f"one run may take {new_run_s:g} s, more than the whole budget of {budget.hours:g} h")
    if len(live) + 1 > budget.runs:
        oldest_to_age = live[len(live) + 1 - budget.runs - 1]  # the run whose ageing out leaves room for one
        resets = oldest_to_age.created_at + window_s
        return BudgetState(False, "runs", len(live), used_s, resets,
                           f"{budget.runs} runs per {budget.window_hours:g} h used")
    if used_s + new_run_s > cap_s:
        remaining = used_s
        resets = None
        for u in live:
            remaining -= u.seconds
            if remaining + new_run_s <= cap_s:
                resets = u.created_at + window_s
                break
        return BudgetState(False, "hours", len(live), used_s, resets,
                           f"{used_s / 3600:.2f} of {budget.hours:g} h of run time per {budget.window_hours:g} h "
                           f"used; a run reserves {new_run_s:g} s")
    return BudgetState(True, "", len(live), used_s, None)


def summary(usage: Sequence[Usage], now: float, budget: Budget, new_run_s: float) -> dict:
    """GET /budget: limits, what is used, what remains, and when the next run fits if it does not now."""
    state = check(usage, now, budget, new_run_s)
    live = in_window(usage, now, budget.window_hours * 3600)
    return {
        "window_hours": budget.window_hours,
        "runs": {"limit": budget.runs, "used": state.runs_used, "remaining": max(0, budget.runs - state.runs_used)},
        "hours": {"limit": budget.hours, "used": round(state.seconds_used / 3600, 4),
                  "remaining": round(max(0.0, budget.hours - state.seconds_used / 3600), 4)},
        "run_reserves_seconds": new_run_s,
        "can_submit": state.ok,
        "limited_by": state.limit or None,
        "resets_at": state.resets_at,
        "oldest_in_window_at": live[0].created_at if live else None,
    }

"""The pull-request gate: scope the change, flag what needs a maintainer, then judge the one record it adds.

Stages for the added record, in order: `verify record` always; `verify tokenizer` when the record is flagged
(its own tokenizer, dataset code or byte accounting); `verify probes` when it ships an artifact; `verify
reproduce` when its track is runnable on the CI machine. Every stage that runs a record's code does it through
the sandbox. The result renders as Markdown for `$GITHUB_STEP_SUMMARY`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import git

from tools.records.model import CheckResult, RecordError
from tools.verify.pr_audit import AuditFlag, audit_flags
from tools.verify.pr_dates import date_problems
from tools.verify.pr_scope import (
    PullRequestScope,
    changes_between,
    classify_changes,
    copied_logs,
    record_folders_at,
)

Stage = Callable[[Path], list[CheckResult]]
STATUS_ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️", "skip": "⏭️"}


@dataclass
class StageResult:
    name: str
    checks: list[CheckResult]


@dataclass
class GateReport:
    base: str
    head: str
    scope: PullRequestScope
    flags: list[AuditFlag] = field(default_factory=list)
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def record(self) -> str | None:
        return self.scope.new_records[0] if len(self.scope.new_records) == 1 else None

    @property
    def verdict(self) -> str:
        """"no record to judge" (a change that adds no record and breaks nothing: docs, code for a maintainer),
        "failed" or "passed"."""
        if not self.scope.problems and not self.scope.new_records:
            return "no record to judge"
        if self.scope.problems or self.scope.core_changes or self.record is None:
            return "failed"
        return "failed" if any(c.status == "fail" for s in self.stages for c in s.checks) else "passed"

    @property
    def ok(self) -> bool:
        return self.verdict != "failed"

    @property
    def needs_human(self) -> list[str]:
        reasons = [f.message for f in self.flags]
        reasons += [f"{c.id}: {c.message}" for s in self.stages for c in s.checks if c.status == "skip" and
                    c.id in ("normalization", "causality", "rescore")]
        if self.scope.core_changes:
            reasons.append("core change: " + ", ".join(self.scope.core_changes[:10]))
        return reasons

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "base": self.base,
            "head": self.head,
            "record": self.record,
            "problems": self.scope.problems,
            "core_changes": self.scope.core_changes,
            "ignored_generated": self.scope.ignored_generated,
            "flags": [{"kind": f.kind, "message": f.message, "diff": f.diff} for f in self.flags],
            "stages": [
                {"name": s.name, "checks": [{"id": c.id, "status": c.status, "message": c.message} for c in s.checks]}
                for s in self.stages
            ],
            "needs_human": self.needs_human,
            "notes": self.notes,
        }

    def markdown(self) -> str:
        verdict = {"passed": "✅ passed", "failed": "❌ failed", "no record to judge": "ℹ️ no record to judge"}[self.verdict]
        lines = [f"## Parameter-golf gate: {verdict}", "", f"Base `{self.base}` → head `{self.head}`.", ""]
        if self.record:
            lines.append(f"Record: `{self.record}`")
        if self.scope.core_changes:
            lines += ["", "### Core change (not judged as a record; a maintainer must review)", ""]
            lines += [f"- `{p}`" for p in self.scope.core_changes]
        if self.scope.problems:
            lines += ["", "### Problems", ""] + [f"- ❌ {p}" for p in self.scope.problems]
        if self.scope.ignored_generated:
            lines += ["", "Generated files in the pull request are ignored (regenerated after merge): "
                      + ", ".join(f"`{p}`" for p in self.scope.ignored_generated)]
        for stage in self.stages:
            lines += ["", f"### {stage.name}", "", "| check | status | reason |", "|---|---|---|"]
            for c in stage.checks:
                reason = c.message.replace("|", "\\|").replace("\n", " ")
                lines.append(f"| `{c.id}` | {STATUS_ICON.get(c.status, '')} {c.status} | {reason} |")
        if self.needs_human:
            lines += ["", "### Needs a maintainer", ""] + [f"- {r}" for r in self.needs_human]
        for flag in self.flags:
            if flag.diff:
                lines += ["", f"<details><summary>{flag.message}</summary>", "", "```diff", flag.diff.rstrip(),
                          "```", "", "</details>"]
        for note in self.notes:
            lines += ["", f"> {note}"]
        return "\n".join(lines) + "\n"


def _read_text_at(commit: git.Commit, path: str) -> str | None:
    try:
        return (commit.tree / path).data_stream.read().decode("utf-8", errors="replace")
    except KeyError:
        return None


def gate_pull_request(
    repo_path: Path,
    base_ref: str,
    head_ref: str = "HEAD",
    *,
    stages: dict[str, Stage] | None = None,
    wanted: Callable[[str, Path, list[AuditFlag]], bool] | None = None,
) -> GateReport:
    """Judge the pull request `base_ref..head_ref` of the repository at `repo_path`.

    The record is judged from the working tree, which must be `head_ref` checked out (as in CI). `stages` maps a
    stage name to a function of the record folder (defaults: the real judges); `wanted(name, folder, flags)`
    decides whether a stage runs (default: the rules in the module docstring).
    """
    try:
        repo = git.Repo(repo_path, search_parent_directories=False)
        base, head = repo.commit(base_ref), repo.commit(head_ref)
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError) as error:
        raise RecordError(repo_path, "not a git repository") from error
    except (git.exc.BadName, ValueError) as error:
        raise RecordError(repo_path, f"unknown git reference: {error}") from error
    if repo.head.is_valid() and repo.head.commit != head:
        raise RecordError(repo_path, f"the working tree is not at {head_ref}; check it out first")

    scope = classify_changes(changes_between(repo, base, head), record_folders_at(base))
    if len(scope.new_records) == 1:
        scope.problems.extend(date_problems(scope.new_records[0], base, head))
        scope.problems.extend(copied_logs(Path(repo.git_dir), base.hexsha, head.hexsha, scope.new_records[0],
                                          git_dir=True))
    report = GateReport(base=base_ref, head=head_ref, scope=scope)
    if not scope.is_record_pr:
        return report

    record = scope.new_records[0]
    folder = Path(repo.working_tree_dir) / record
    record_source = _read_text_at(head, f"{record}/train_gpt.py")
    baseline_source = _read_text_at(base, "train_gpt.py")
    report.flags = audit_flags(record, scope.record_files[record], record_source, baseline_source)
    stages = stages if stages is not None else default_stages()
    wanted = wanted or default_wanted
    for name, stage in stages.items():
        if not wanted(name, folder, report.flags):
            continue
        try:
            report.stages.append(StageResult(name, stage(folder)))
        except RecordError as error:
            report.stages.append(StageResult(name, [CheckResult(name.split()[-1], "fail", str(error))]))
    return report


def default_wanted(name: str, folder: Path, flags: list[AuditFlag]) -> bool:
    from tools.verify.pr_stages import stage_applies

    return stage_applies(name, folder, flags)


def default_stages() -> dict[str, Stage]:
    from tools.verify.pr_stages import real_stages

    return real_stages()

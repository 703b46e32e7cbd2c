"""The pull-request gate: scope the change, flag what needs a maintainer, then judge the one record it adds.

Stages for the added record, in order: `verify record` always; `verify tokenizer` when the record is flagged
(its own tokenizer, dataset code or byte accounting); `verify probes` when it ships an artifact; `verify
reproduce` when its track is runnable on the CI machine. Every stage that runs a record's code does it through
the sandbox. The result renders as Markdown for `$GITHUB_STEP_SUMMARY`, or as JSON shaped like `verify record`'s.

The pull request is data: its diff and blobs are read from git, and the record is judged in a scratch tree of the
base commit (tools.verify.pr.scope.judged_tree) by the base's rules (`records/tracks.toml` read from the base
commit) and by the code that is running, which CI installs from the base commit. A pull request that changes
the rules or the judge is a core change for a maintainer: it cannot loosen its own judging.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git

from tools.records.model import CheckResult, RecordError, Report, Track
from tools.verify.pr.audit import AuditFlag, audit_flags
from tools.verify.pr.dates import date_problems
from tools.verify.pr.scope import (
    PullRequestScope,
    changes_between,
    classify_changes,
    copied_logs,
    judged_tree,
    read_blob,
    record_folders_at,
)

# A stage judges the record folder: a list of checks, or a whole Report (then its statistics are kept too).
Stage = Callable[[Path], "list[CheckResult] | Report"]
Wanted = Callable[[str, Path, list[AuditFlag]], bool]
SCOPE_STAGE = "pr scope"
RULES_PATH = "records/tracks.toml"
STATUS_ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️", "skip": "⏭️"}


@dataclass
class StageResult:
    name: str
    checks: list[CheckResult]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateReport:
    base: str
    head: str
    scope: PullRequestScope
    flags: list[AuditFlag] = field(default_factory=list)
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rules: str = ""  # where the rules came from: "<base sha>:records/tracks.toml"

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

    def scope_checks(self) -> list[CheckResult]:
        """The gate's own verdicts as checks: one `fail` per problem (its id), and the core change."""
        checks = [CheckResult(p.id, "fail", p.message) for p in self.scope.problems]
        if self.scope.core_changes:
            paths = ", ".join(self.scope.core_changes[:10])
            if self.scope.new_records:
                checks.append(CheckResult("core_change", "fail", f"a record pull request also changes: {paths}"))
            else:
                checks.append(CheckResult("core_change", "warn", f"core files changed (a maintainer reviews): {paths}"))
        if self.verdict == "no record to judge":
            checks.append(CheckResult("record", "skip", "no record to judge: the pull request adds no record"))
        return checks

    def to_json(self) -> dict:
        """`verify record --json`'s shape (`ok`, `record`, `checks` of `{id, status, message}`, `stats`), each check
        also naming its `stage`; then what only the gate has."""
        from tools.verify.report_format import json_safe

        checks = [(SCOPE_STAGE, c) for c in self.scope_checks()]
        checks += [(s.name, c) for s in self.stages for c in s.checks]
        return json_safe({
            "ok": self.ok,
            "record": self.record,
            "checks": [{"id": c.id, "status": c.status, "message": c.message, "stage": stage} for stage, c in checks],
            "stats": next((s.stats for s in self.stages if s.stats), {}),
            "verdict": self.verdict,
            "base": self.base,
            "head": self.head,
            "rules": self.rules,
            "problems": [{"id": p.id, "message": p.message} for p in self.scope.problems],
            "core_changes": self.scope.core_changes,
            "ignored_generated": self.scope.ignored_generated,
            "flags": [{"kind": f.kind, "message": f.message, "diff": f.diff} for f in self.flags],
            "stages": [
                {"name": s.name, "checks": [{"id": c.id, "status": c.status, "message": c.message} for c in s.checks]}
                for s in self.stages
            ],
            "needs_human": self.needs_human,
            "notes": self.notes,
        })

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


def base_tracks(git_dir: Path, base: str) -> dict[str, Track]:
    """The track table as the base commit has it (`git cat-file blob <base>:records/tracks.toml`): the rules a pull
    request is judged by, whatever its own tracks.toml or working tree says."""
    from tools.records.tracks import load_tracks

    with tempfile.TemporaryDirectory(prefix="pr-rules-") as scratch:
        rules = Path(scratch) / "tracks.toml"
        rules.write_bytes(read_blob(git_dir, base, RULES_PATH, git_dir=True))
        return load_tracks(rules)


def scope_pull_request(repo: git.Repo, base: git.Commit, head: git.Commit) -> PullRequestScope:
    """What the pull request changes and every reason it cannot be judged as a record (pure reads of git)."""
    scope = classify_changes(changes_between(repo, base, head), record_folders_at(base))
    if len(scope.new_records) == 1:
        scope.problems.extend(date_problems(scope.new_records[0], base, head))
        scope.problems.extend(copied_logs(Path(repo.git_dir), base.hexsha, head.hexsha, scope.new_records[0],
                                          git_dir=True))
    return scope


def _open(repo_path: Path, base_ref: str, head_ref: str) -> tuple[git.Repo, git.Commit, git.Commit]:
    try:
        repo = git.Repo(repo_path, search_parent_directories=False)
        return repo, repo.commit(base_ref), repo.commit(head_ref)
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError) as error:
        raise RecordError(repo_path, "not a git repository") from error
    except (git.exc.BadName, ValueError) as error:
        raise RecordError(repo_path, f"unknown git reference: {error}") from error


def gate_pull_request(
    repo_path: Path,
    base_ref: str,
    head_ref: str = "HEAD",
    *,
    stages: dict[str, Stage] | None = None,
    wanted: Wanted | None = None,
    skip: Collection[str] = (),
) -> GateReport:
    """Judge the pull request `base_ref..head_ref` of the repository at `repo_path`, read as data: neither its
    working tree nor anything the pull request changed outside its record folder is used or run.

    `stages` maps a stage name to a function of the record folder (default: the real judges, by the base's rules);
    `wanted(name, folder, flags)` decides whether a stage runs (default: the rules in the module docstring);
    stage names in `skip` never run.
    """
    repo, base, head = _open(repo_path, base_ref, head_ref)
    scope = scope_pull_request(repo, base, head)
    report = GateReport(base=base_ref, head=head_ref, scope=scope, rules=f"{base.hexsha}:{RULES_PATH}")
    if not scope.is_record_pr:
        return report

    record = scope.new_records[0]
    report.flags = audit_flags(record, scope.record_files[record], _read_text_at(head, f"{record}/train_gpt.py"),
                               _read_text_at(base, "train_gpt.py"))
    git_dir = Path(repo.git_dir)
    with judged_tree(git_dir, base.hexsha, head.hexsha, record, git_dir=True) as judged:
        folder = judged / record
        tracks: Mapping[str, Track] | None = None
        if stages is None or (wanted is None and stages):  # the real judges and rules need the base's table
            tracks = base_tracks(git_dir, base.hexsha)
        stages = stages if stages is not None else default_stages(tracks, judged)
        wanted = wanted or default_wanted(tracks)
        for name, stage in stages.items():
            if name in skip or not wanted(name, folder, report.flags):
                continue
            report.stages.append(_run_stage(name, stage, folder))
    report.notes.append(f"Judged by the rules of {report.rules} and the accepted records of the base commit.")
    return report


def _run_stage(name: str, stage: Stage, folder: Path) -> StageResult:
    try:
        result = stage(folder)
    except RecordError as error:
        return StageResult(name, [CheckResult(name.split()[-1], "fail", str(error))])
    if isinstance(result, Report):
        return StageResult(name, list(result.checks), dict(result.stats))
    return StageResult(name, list(result))


def default_wanted(tracks: Mapping[str, Track] | None) -> Wanted:
    from tools.verify.pr.stages import stage_applies

    return lambda name, folder, flags: stage_applies(name, folder, flags, tracks)


def default_stages(tracks: Mapping[str, Track], judged_root: Path) -> dict[str, Stage]:
    from tools.verify.pr.stages import gate_stages

    return gate_stages(tracks, judged_root)

"""Evidence from the logs: `code_matches_logs` (each log ran the submitted script), `seeds_distinct`, `min_seeds`."""

from __future__ import annotations

import ast
import fnmatch
import hashlib
from collections import Counter, defaultdict

from tools.records.model import CheckResult
from tools.verify.checks.code_bytes import unwrap_stub
from tools.verify.checks.common import SCRIPT_NAME, RecordContext, first_and_count, result


def first_difference(ours: bytes, theirs: bytes) -> tuple[int, str, str]:
    """1-based number of the first differing line and both lines (shortened), '<end of file>' past the end."""
    a, b = ours.splitlines(keepends=True), theirs.splitlines(keepends=True)
    for number in range(1, max(len(a), len(b)) + 1):
        line_a = a[number - 1] if number <= len(a) else None
        line_b = b[number - 1] if number <= len(b) else None
        if line_a != line_b:
            return number, _show(line_a), _show(line_b)
    return max(len(a), len(b)), "", ""  # unreachable for different inputs


def _show(line: bytes | None, width: int = 80) -> str:
    if line is None:
        return "<end of file>"
    text = repr(line.decode("utf-8", errors="replace").rstrip("\n"))
    return text if len(text) <= width else text[: width - 3] + "..."


def check_code_matches_logs(ctx: RecordContext) -> CheckResult:
    """Each log's embedded source is the submitted script, byte for byte. A script shipped as a self-extracting
    lzma+base85 stub is compared by the source inside it (decoded as data, never run)."""
    script = ctx.script
    name = ctx.script_name or SCRIPT_NAME
    if script is None:
        return result("code_matches_logs", "skip", f"no readable {name} (see files)")
    if not ctx.logs:
        return result("code_matches_logs", "skip", "no logs (see files)")
    script_sha = hashlib.sha256(script).hexdigest()
    unwrapped = unwrap_stub(script)
    others = _other_scripts(ctx) if ctx.legacy else {}
    problems, without_code, via_stub, via_other = [], [], [], []
    for item in ctx.counted_logs:
        log = item.log
        if log.code is None or (ctx.legacy and not _is_source(log.code, script)):
            without_code.append(item.name)  # a public log's text before a header line is not always code
            continue
        embedded = log.code.encode("utf-8", errors="surrogateescape")
        if embedded != script:
            if unwrapped is not None and embedded == unwrapped:
                via_stub.append(item.name)
            elif ctx.legacy and embedded.endswith(b"\n" + script):
                via_other.append(f"{item.name} printed a banner before it")
            elif embedded in others:
                via_other.append(f"{item.name} ran {others[embedded]}")
            else:
                reference = unwrapped if unwrapped is not None else script
                line, theirs, ours = first_difference(embedded, reference)
                what = f"the source inside {name}'s lzma stub" if unwrapped is not None else name
                problems.append(f"{item.name}: embedded code differs from {what} at line {line}: log {theirs} vs script {ours}")
        if log.code_sha256 is not None and log.code_sha256 != script_sha:
            problems.append(f"{item.name}: logged code_sha256 {log.code_sha256[:12]}... != {name}'s {script_sha[:12]}...")
    if without_code and not ctx.legacy:
        problems.append(f"{without_code[0]}: no embedded code (no line of 100 '=' after the source)")
    evidence = {"script_sha256": script_sha, "without_code": without_code, "via_stub": via_stub, "via_other": via_other}
    if problems:
        return result("code_matches_logs", "fail", first_and_count(problems), problems=problems, **evidence)
    if len(without_code) == len(ctx.counted_logs):
        return result("code_matches_logs", "skip", f"legacy logs embed no code: {', '.join(without_code)}", **evidence)
    note = f"; no code in {', '.join(without_code)}" if without_code else ""
    note += f"; {', '.join(via_other)} (shipped)" if via_other else ""
    stub = f" (the source inside its lzma stub, for {', '.join(via_stub)})" if via_stub else ""
    checked = len(ctx.counted_logs) - len(without_code)
    return result(
        "code_matches_logs", "pass",
        f"{checked} log(s) embed {name} byte for byte{stub} (sha256 {script_sha[:12]}...){note}", **evidence,
    )


def _other_scripts(ctx: RecordContext) -> dict[bytes, str]:
    """A public study may ship several training scripts (one per variant); a log that ran another shipped top-level
    script named like an entry script ran shipped code. Source bytes -> file name."""
    found = {}
    for name in ctx.record.files:
        if "/" in name or not name.endswith(".py") or name == ctx.script_name:
            continue
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in ctx.entry_patterns):
            data = ctx.read_file(name)
            if data is not None:
                found[data] = name
    return found


def _is_source(text: str, script: bytes) -> bool:
    """The text before a public log's first header line is sometimes a banner, not a source: a source parses as
    Python (as data: nothing runs) or shares most of its lines with the script (a slightly broken copy of it is
    still the code that ran, and differs)."""
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    known = set(script.decode("utf-8", "replace").splitlines())
    return bool(lines) and sum(line in known for line in lines) >= len(lines) / 2


# Settings that name the run or where its files live, not how it trains: they may differ between seeds. Public logs
# print them in lower case (`seed: 42`, `run_id: ...`, `logfile: logs/1.txt`, `rank: 0`).
# TORCH_SEED: the run service's name for the seed (docs/SERVICE.md).
PER_RUN_SETTINGS = frozenset({"SEED", "TORCH_SEED", "RUN_ID", "ARTIFACT_DIR", "DATA_PATH", "TOKENIZER_PATH",
                              "MLFLOW_TRACKING_URI"})
_PER_RUN_SUFFIXES = ("_path", "_dir", "_file", "_files", "logfile")
_PER_RUN_LOWER = frozenset({"seed", "run_id", "rank", "local_rank", "is_main_process", "logfile"})


def is_per_run_setting(key: str) -> bool:
    return key in PER_RUN_SETTINGS or key.lower() in _PER_RUN_LOWER or key.lower().endswith(_PER_RUN_SUFFIXES)


def check_config_matches_logs(ctx: RecordContext) -> CheckResult:
    """Every seed ran the same configuration: the logs' `hyperparameters:` lines agree except for per-run
    settings (docs/FAILURES.md F1: a third seed from another configuration runs the same script with other env vars)."""
    logged = [(item.name, dict(item.log.hyperparameters)) for item in ctx.counted_logs if item.log.hyperparameters]
    if len(logged) < 2:
        return result("config_matches_logs", "skip", "fewer than two logs print a hyperparameters line")
    reference_name, reference = logged[0]
    problems = []
    for name, settings in logged[1:]:
        # A public log prints whatever settings its script version had; a setting one version lacks is the code's
        # difference (code_matches_logs), so only settings both print are compared there.
        keys = set(reference) & set(settings) if ctx.legacy else set(reference) | set(settings)
        for key in sorted(key for key in keys if not is_per_run_setting(key)):
            ours, theirs = reference.get(key, "<absent>"), settings.get(key, "<absent>")
            if ours != theirs:
                problems.append(f"{name}: {key}={theirs} but {reference_name} has {key}={ours}")
    if problems:
        return result("config_matches_logs", "fail", first_and_count(problems), problems=problems)
    shared = sum(1 for key in reference if not is_per_run_setting(key))
    return result("config_matches_logs", "pass", f"{len(logged)} logs ran the same {shared} settings")


def check_seeds_distinct(ctx: RecordContext) -> CheckResult:
    problems = []
    submission = ctx.record.submission
    if submission is not None:
        repeated = sorted(seed for seed, count in Counter(submission.seeds).items() if count > 1)
        if repeated:
            problems.append(f"submission.json: seed {repeated[0]} listed more than once")
    logs_by_seed: dict[int, list[str]] = defaultdict(list)
    for item in ctx.counted_logs:
        if item.seed is not None:
            logs_by_seed[item.seed].append(item.name)
    for seed, names in sorted(logs_by_seed.items()):
        if len(names) > 1:
            problems.append(f"{', '.join(names[:-1])} and {names[-1]} {'both' if len(names) == 2 else 'all'} ran seed {seed}")
    if problems:
        return result("seeds_distinct", "fail", first_and_count(problems), problems=problems)
    if not logs_by_seed:
        return result("seeds_distinct", "skip", "no log has a seed line")
    return result("seeds_distinct", "pass", f"{len(logs_by_seed)} logs, each a different seed: {sorted(logs_by_seed)}")


def scored_seed_count(ctx: RecordContext) -> tuple[int, list[str]]:
    """Distinct seeds with a score in some log; a log without a seed line counts as one run of its own."""
    labels = []
    seen: set[int] = set()
    for item in ctx.counted_logs:
        if item.log.val_bpb is None:
            continue
        seed = ctx.seed_of(item)
        if seed is None:
            labels.append(item.name)
        elif seed not in seen:
            seen.add(seed)
            labels.append(str(seed))
    return len(labels), labels


def check_min_seeds(ctx: RecordContext) -> CheckResult:
    if ctx.track is None:
        return result("min_seeds", "skip", "unknown track (see track): no minimum to check against")
    count, labels = scored_seed_count(ctx)
    needed = ctx.track.min_seeds
    shown = ", ".join(labels) or "none"
    if count == 0 and ctx.legacy:
        # No log at all is the files check's failure, a claim no log backs is claims_match_logs': not counted twice.
        return result("min_seeds", "skip", "no log prints a final score (see files and claims_match_logs)", count=0)
    if count < needed:
        return result("min_seeds", "fail", f"{count} scored seed(s) ({shown}) < track minimum {needed}", count=count)
    return result("min_seeds", "pass", f"{count} scored seeds ({shown}) >= track minimum {needed}", count=count)

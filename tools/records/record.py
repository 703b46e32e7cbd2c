"""Load a record folder (`records/<track>/<record>/`) as data, without judging it.

A record comes from a pull request, so it is hostile: the folder must lie inside the records root (after
resolving symlinks), the walk never follows a symlink and never reads through one (they are listed, so the judge
can fail them), and only regular files are opened. Problems with parts of the record (an invalid submission.json,
an unreadable log) are kept in the Record for the judge to report; only an unusable folder raises.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from tools.records import paths
from tools.records.logparse import parse_log
from tools.records.model import ParsedLog, Record, RecordError, Submission
from tools.records.schema import load_submission

MAX_RECORD_FILES = 10_000  # a real record has a handful; a huge tree is refused rather than walked forever
MAX_FOLDER_DEPTH = 16  # real records nest two or three levels (logs/, tokenizers/)
SUBMISSION_FILE = "submission.json"
SCRIPT_FILE = "train_gpt.py"
_ARTIFACT = re.compile(r"^final_model_seed(\d+)\.")
_NOT_LOGS = {"requirements.txt"}


def is_log_name(name: str) -> bool:
    """Log files: `*.log`, and `*.txt` other than requirements.txt and README*.txt."""
    lower = name.lower()
    if lower.endswith(".log"):
        return True
    return lower.endswith(".txt") and lower not in _NOT_LOGS and not lower.startswith("readme")


def load_record(folder: str | Path, records_root: str | Path | None = None) -> Record:
    """Read a record folder. RecordError when the folder is missing, not a folder, or not
    `<records root>/<track>/<record>` (default root: `paths.records_root()`)."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        raise RecordError(folder, "no such record folder")
    resolved = folder.resolve()
    if not resolved.is_dir():
        raise RecordError(folder, "not a folder")
    root = Path(records_root if records_root is not None else paths.records_root()).resolve()
    try:
        parts = resolved.relative_to(root).parts
    except ValueError:
        raise RecordError(folder, f"outside the records root {root}") from None
    if len(parts) != 2:
        raise RecordError(folder, f"expected {root}/<track>/<record>, got a folder {len(parts)} level(s) below it")

    files, symlinks = _walk(resolved)
    linked = set(symlinks)
    submission_file = submission_file_name(files)
    submission, submission_error = _submission(resolved, linked, submission_file)
    logs: dict[str, ParsedLog] = {}
    log_errors: dict[str, str] = {}
    for name in files:
        if not is_log_name(Path(name).name):
            continue
        if name in linked:
            log_errors[name] = f"{name}: symbolic link; not read"
            continue
        try:
            logs[name] = parse_log(resolved / name, follow_symlinks=False)
        except RecordError as problem:
            log_errors[name] = f"{name}: {problem.message}"
    artifacts: dict[int, Path] = {}
    for name in files:
        match = _ARTIFACT.match(name)  # top level only: no '/' can precede the prefix
        if match and name not in linked:
            artifacts.setdefault(int(match.group(1)), resolved / name)
    script = resolved / SCRIPT_FILE
    return Record(
        path=resolved,
        track_id=parts[0],
        submission=submission,
        submission_error=submission_error,
        script_path=script if SCRIPT_FILE in files and SCRIPT_FILE not in linked else None,
        logs=logs,
        artifacts=artifacts,
        files=files,
        log_errors=log_errors,
        symlinks=symlinks,
        submission_file=submission_file,
    )


def _walk(folder: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every file and symlink, the symlinks), relative POSIX paths, sorted. Symlinked folders are not entered.

    Iterative and bounded (MAX_RECORD_FILES entries, MAX_FOLDER_DEPTH levels): a hostile tree of thousands of
    nested folders is refused with one line instead of overflowing the stack."""
    files: list[str] = []
    symlinks: list[str] = []
    pending: list[tuple[Path, PurePosixPath, int]] = [(folder, PurePosixPath(), 0)]
    while pending:
        directory, base, depth = pending.pop()
        if depth > MAX_FOLDER_DEPTH:
            raise RecordError(folder, f"folders nested deeper than {MAX_FOLDER_DEPTH} levels; not a record")
        try:
            with os.scandir(directory) as entries:
                children = list(entries)
        except OSError:
            continue  # unreadable folders are the `files` check's business
        for entry in children:
            relative = (base / entry.name).as_posix()
            if entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), base / entry.name, depth + 1))
                continue
            files.append(relative)
            if entry.is_symlink():
                symlinks.append(relative)
        if len(files) > MAX_RECORD_FILES:
            raise RecordError(folder, f"more than {MAX_RECORD_FILES} files; not a record")
    return tuple(sorted(files)), tuple(sorted(symlinks))


def submission_file_name(files: tuple[str, ...]) -> str:
    """submission.json; else the one top-level `submission_*.json` (public records named it submission_jepa.json)."""
    if SUBMISSION_FILE in files:
        return SUBMISSION_FILE
    others = [name for name in files if "/" not in name and name.startswith("submission") and name.endswith(".json")]
    return others[0] if len(others) == 1 else SUBMISSION_FILE


def _submission(folder: Path, linked: set[str], name: str = SUBMISSION_FILE) -> tuple[Submission | None, str | None]:
    path = folder / name
    if name in linked:
        return None, f"{path}: symbolic link; not read"
    if not path.is_file():
        return None, f"{path}: missing"
    try:
        return load_submission(path, follow_symlinks=False), None
    except RecordError as problem:
        return None, str(problem)

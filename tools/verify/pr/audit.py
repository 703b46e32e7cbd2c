"""Things in a record that a maintainer must look at: its own tokenizer, its own dataset code, or byte accounting
that differs from the baseline's (the denominator of val_bpb: every C-row of docs/FAILURES.md started there).

The record's script is parsed with `ast`, never imported or run.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

TOKENIZER_SUFFIXES = (".model", ".vocab", ".spm")
TOKENIZER_NAMES = ("tokenizer.json",)
DATASET_PATTERNS = (re.compile(r"(^|/)prepare[^/]*\.py$"), re.compile(r"dataset[^/]*\.py$"), re.compile(r"\.jsonl$"))
# Functions whose names say they count bytes or build per-token tables feeding the bpb denominator.
BYTE_ACCOUNTING_NAME = re.compile(r"byte|bpb|lut", re.IGNORECASE)


@dataclass(frozen=True)
class AuditFlag:
    kind: str  # "tokenizer" | "dataset" | "byte_accounting" | "unparseable"
    message: str
    diff: str = ""


def byte_accounting_functions(source: str) -> dict[str, str]:
    """Name -> source of every function (top level or nested, methods too) whose name matches the pattern."""
    tree = ast.parse(source)
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and BYTE_ACCOUNTING_NAME.search(node.name):
            found[node.name] = ast.get_source_segment(source, node) or ""
    return found


def byte_accounting_diff(record_source: str, baseline_source: str, record_name: str) -> str:
    """A unified diff of the byte-accounting functions; empty when they are identical to the baseline's."""
    ours, theirs = byte_accounting_functions(baseline_source), byte_accounting_functions(record_source)
    chunks = []
    for name in sorted(set(ours) | set(theirs)):
        before, after = ours.get(name, ""), theirs.get(name, "")
        if before == after:
            continue
        chunks.extend(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"baseline train_gpt.py:{name}",
                tofile=f"{record_name}/train_gpt.py:{name}",
            )
        )
    return "".join(chunks)


def audit_flags(record: str, files: list[str], record_source: str | None, baseline_source: str | None) -> list[AuditFlag]:
    flags = []
    names = [PurePosixPath(f).name for f in files]
    tokenizers = [f for f, n in zip(files, names, strict=True) if n.endswith(TOKENIZER_SUFFIXES) or n in TOKENIZER_NAMES]
    if tokenizers:
        flags.append(AuditFlag("tokenizer", f"ships its own tokenizer: {', '.join(tokenizers)}"))
    dataset_files = [f for f in files if any(p.search(f) for p in DATASET_PATTERNS)]
    if dataset_files:
        flags.append(AuditFlag("dataset", f"ships dataset code or data: {', '.join(dataset_files)}"))
    if record_source is not None and baseline_source is not None:
        try:
            diff = byte_accounting_diff(record_source, baseline_source, record)
        except SyntaxError as error:
            flags.append(AuditFlag("unparseable", f"train_gpt.py does not parse (line {error.lineno}): {error.msg}"))
        else:
            if diff:
                flags.append(
                    AuditFlag("byte_accounting", "byte-accounting code differs from the baseline's", diff=diff)
                )
    return flags

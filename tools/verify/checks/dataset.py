"""`dataset`: every log scored the track's dataset, with its tokenizer, on the full validation set.

Each log names the dataset and the sha256 of its manifest and tokenizer, and the val_tokens / val_bytes it
scored; they must equal the local manifest's (`<datasets_root>/<track.dataset>/manifest.json`; what a manifest
requires of a log, for a tokenized dataset or the run service's raw byte one, is tools.records.datasets). Scoring
part of the validation set (C5 in docs/FAILURES.md) shows up as a smaller val_tokens or val_bytes. A record that ships its own
tokenizer or a dataset script is flagged for the tokenizer audit (`verify tokenizer`): warn, not pass.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path
from typing import Any

from tools.records.datasets import logged_facts, tokenizer_label  # noqa: F401  (tokenizer_label re-exported)
from tools.records.model import CheckResult
from tools.records.paths import read_regular_file
from tools.verify.checks.common import RecordContext, first_and_count, result

MAX_MANIFEST_BYTES = 50_000_000
TOKENIZER_PATTERNS = ("*.model", "tokenizer.json", "*.vocab", "*tokenizer*")
DATASET_SCRIPT_PATTERNS = ("*prepare*.py", "*dataset*.py", "*tokeniz*.py", "*shard*.py", "data/*.py", "*data*.py")


# The run service's raw byte dataset (tools/service/dataset.py NAME; the judge does not import the service).
SERVICE_BYTE_DATASET = "shakespeare_bytes"


def prepare_command(dataset: str) -> str:
    """The command that builds a dataset folder (data/prepare.py's subcommands; the run service's own builder)."""
    if dataset == SERVICE_BYTE_DATASET:
        return f"python -m tools.service.dataset data/datasets/{SERVICE_BYTE_DATASET}"
    if dataset.startswith("shakespeare_"):
        return "python data/prepare.py shakespeare" + (" --tokenizer byte" if dataset.endswith("_byte") else "")
    if dataset.startswith("fineweb"):
        return "python data/prepare.py fineweb"
    return "python data/prepare.py --help"


def files_needing_audit(files: tuple[str, ...]) -> list[str]:
    """Tokenizer files and dataset scripts a record ships: its byte accounting needs an audit."""
    flagged = []
    for relative in files:
        name = Path(relative).name
        if name == "train_gpt.py":
            continue
        patterns = TOKENIZER_PATTERNS + (DATASET_SCRIPT_PATTERNS if name.endswith(".py") else ())
        if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in patterns):
            flagged.append(relative)
    return flagged


def _read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    data, truncated = read_regular_file(path, MAX_MANIFEST_BYTES)
    if truncated:
        raise ValueError(f"larger than {MAX_MANIFEST_BYTES} bytes")
    manifest = json.loads(data)
    if not isinstance(manifest, dict):
        raise ValueError("not a JSON object")
    return manifest, hashlib.sha256(data).hexdigest()


def check_dataset(ctx: RecordContext) -> CheckResult:
    if ctx.track is None:
        return result("dataset", "skip", "unknown track (see track): no dataset to check against")
    if not ctx.logs:
        return result("dataset", "skip", "no logs (see files)")
    dataset = ctx.track.dataset
    strict = not ctx.legacy
    problems: list[str] = []
    variants: dict[str, list[str]] = {}
    compared = 0  # facts actually compared: a legacy log may have none
    for item in ctx.logs:
        named = item.log.dataset_name
        if named is None:
            if strict:
                problems.append(f"{item.name}: no dataset line (expected name:{dataset})")
        else:
            compared += 1
        if named is not None and named != dataset:
            if ctx.track.dataset_is_variant(named):
                variants.setdefault(named, []).append(item.name)
            else:
                problems.append(f"{item.name}: dataset {named!r}, but track {ctx.track.id} uses {dataset!r}")
    audit = files_needing_audit(ctx.record.files)
    audit_note = f"ships {', '.join(audit)}: needs tokenizer audit (verify tokenizer)" if audit else ""
    if variants and not problems:
        # Legal under the ruleset (another tokenization of the same corpus), but its byte accounting must be audited.
        used = ", ".join(f"{name} ({', '.join(logs)})" for name, logs in sorted(variants.items()))
        note = f"; {audit_note}" if audit_note else ""
        return result("dataset", "warn", f"changed tokenizer: {used} instead of {dataset}; needs tokenizer audit "
                                         f"(verify tokenizer){note}", needs_audit=audit, variants=sorted(variants))

    manifest_path = (ctx.datasets_root or Path("data/datasets")) / dataset / "manifest.json"
    if not problems and not manifest_path.is_file():
        reason = f"no local manifest {manifest_path}; prepare it with `{prepare_command(dataset)}`"
        if audit:
            return result("dataset", "warn", f"{audit_note}; {reason}", needs_audit=audit)
        return result("dataset", "skip", reason)

    if manifest_path.is_file():
        try:
            manifest, manifest_sha = _read_manifest(manifest_path)
        except (OSError, ValueError) as problem:
            return result("dataset", "fail", f"{manifest_path}: unreadable manifest: {problem}")
        tokenizer = tokenizer_label(manifest)
        if ctx.track.tokenizer and tokenizer is not None and tokenizer != ctx.track.tokenizer:
            problems.append(f"{manifest_path}: the dataset's tokenizer is {tokenizer}, but track {ctx.track.id} says "
                            f"tokenizer = {ctx.track.tokenizer!r} (tracks.toml and the prepared dataset disagree)")
        expected = logged_facts(manifest, manifest_sha)
        for item in ctx.logs:
            for key, want in expected.items():
                got = getattr(item.log, key)
                if got is None:
                    if strict:
                        problems.append(f"{item.name}: no {key} logged (manifest says {want})")
                    continue
                compared += 1
                if got != want:
                    what = "partial or wrong validation set: " if key in ("val_tokens", "val_bytes") else ""
                    problems.append(f"{item.name}: {what}{key} {got} != manifest's {want} ({manifest_path.name} of {dataset})")

    if problems:
        return result("dataset", "fail", first_and_count(problems), problems=problems, needs_audit=audit)
    if audit:
        return result("dataset", "warn", f"{audit_note}; logs match {dataset}'s manifest", needs_audit=audit)
    if compared == 0:
        return result("dataset", "skip", "the logs name no dataset, manifest or validation totals (legacy logs)")
    return result(
        "dataset", "pass", f"{len(ctx.logs)} log(s) scored all of {dataset} (manifest and tokenizer sha256, val tokens and bytes)"
    )

"""Tokenizer byte-accounting audit: is a record's bpb denominator the true byte count of the validation text?

Three checks, each computed from the original validation documents, never from a lookup table alone:
- `val_documents`: the dataset's val_docs/ files are the documents its manifest describes (bytes, sha256);
- `tokenizer_roundtrip`: [BOS] + encode(doc) for every document, decoded with the judge's own per-token byte
  strings (tools.verify.tokenizer.byte_truth), gives back the original bytes exactly (else: lossy or transformed text);
- `tokenizer_bytes`: the record's own accounting (its `train_gpt.py byte-table`, run in the sandbox; else the
  baseline's) summed over the scored targets equals the true byte count; a difference is attributed to the known
  bug classes (tools.verify.tokenizer.byte_table) and converted to bpb. Logged `val_bytes` must equal the truth as well.
When the track's validation text is not on this machine (the main track's FineWeb), a record that ships its own
vocabulary or byte table is audited from those files on the judge's probe corpus (tools.verify.tokenizer.shipped).
On a track the run service scores (`scored_by = "service"`: the fixed byte tokenizer, bytes counted by the service)
all three are `skip`, "not applicable on this track".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.records import paths
from tools.records.model import CheckResult, RecordError, Status, Track
from tools.records.rules import MAX_FILE_BYTES
from tools.verify.checks.common import not_applicable
from tools.verify.tokenizer.byte_table import (
    ByteTable,
    TableComparison,
    TableError,
    compare_table,
    contract_table,
    load_byte_table,
)
from tools.verify.tokenizer.byte_truth import (
    MAX_TOKENIZER_FILE_BYTES,
    SPACE_MARK,
    StreamStats,
    TokenizerError,
    TokenizerTruth,
    load_tokenizer,
    scan_documents,
)

SCRIPT_NAME = "train_gpt.py"
ENTRY_POINT = b"byte-table"
DEFAULT_TIMEOUT_S = 300.0  # importing torch on a loaded CPU box can take a while; the table itself is instant
MAX_MANIFEST_BYTES = 64 * 1024**2
MAX_DOCUMENT_BYTES = 4 * 1024**3
MAX_SCRIPT_BYTES = MAX_FILE_BYTES
MAX_LOG_BYTES = 64 * 1024**2
MAX_SUBMISSION_BYTES = 4 * 1024**2
LOG_SEPARATOR = "\n" + "=" * 100 + "\n"
_LOGGED_VAL = re.compile(r"^val_tokens:(\d+) val_bytes:(\d+)[ \t]*$", re.MULTILINE)
_SAFE_DOC_NAME = re.compile(r"^[^/\\\x00]+$")


# --- the validation text --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValDocuments:
    """The validation documents of a dataset as found on disk, with every disagreement with the manifest."""

    dataset_dir: Path
    documents: tuple[tuple[str, bytes], ...]  # (name, raw bytes) in manifest order
    problems: tuple[str, ...]  # "val_docs/<name>: ..." one line each
    manifest: Mapping[str, Any]

    @property
    def total_bytes(self) -> int:
        return sum(len(data) for _, data in self.documents)


def read_manifest(dataset_dir: Path) -> dict[str, Any]:
    path = dataset_dir / "manifest.json"
    try:
        raw, truncated = paths.read_regular_file(path, MAX_MANIFEST_BYTES, follow_symlinks=False)
    except FileNotFoundError:
        raise RecordError(path, f"no manifest: dataset {dataset_dir.name!r} is not prepared (run data/prepare.py)") from None
    except (OSError, ValueError) as e:
        raise RecordError(path, f"cannot read manifest: {getattr(e, 'strerror', None) or e}") from None
    try:
        manifest = json.loads(raw) if not truncated else None
    except ValueError as e:
        raise RecordError(path, f"not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("documents"), list):
        raise RecordError(path, "not a dataset manifest (no `documents` list)")
    return manifest


def read_val_documents(dataset_dir: str | Path) -> ValDocuments:
    """Read val_docs/<name> for every validation document of the manifest and re-check its bytes and sha256."""
    dataset_dir = Path(dataset_dir)
    manifest = read_manifest(dataset_dir)
    documents: list[tuple[str, bytes]] = []
    problems: list[str] = []
    entries = [d for d in manifest["documents"] if isinstance(d, dict) and d.get("split") == "val"]
    for entry in entries:
        name = entry.get("name")
        if not isinstance(name, str) or not _SAFE_DOC_NAME.match(name) or name in (".", ".."):
            problems.append(f"manifest.json: validation document name {name!r} is not a plain file name")
            continue
        where = f"val_docs/{name}"
        try:
            data, truncated = paths.read_regular_file(dataset_dir / "val_docs" / name, MAX_DOCUMENT_BYTES,
                                                      follow_symlinks=False)
        except FileNotFoundError:
            problems.append(f"{where}: missing")
            continue
        except (OSError, ValueError) as e:  # ELOOP: a symlink, refused
            problems.append(f"{where}: cannot read: {getattr(e, 'strerror', None) or e}")
            continue
        if truncated:
            problems.append(f"{where}: larger than {MAX_DOCUMENT_BYTES:,} bytes")
            continue
        if entry.get("bytes") != len(data):
            problems.append(f"{where}: {len(data):,} bytes on disk, manifest says {entry.get('bytes')!r}")
        digest = hashlib.sha256(data).hexdigest()
        if entry.get("sha256") != digest:
            problems.append(f"{where}: sha256 {digest[:12]}… does not match the manifest's {str(entry.get('sha256'))[:12]}…")
        documents.append((name, data))
    if not entries:
        problems.append("manifest.json: no validation documents")
    total = sum(len(d) for _, d in documents)
    if not problems and manifest.get("val_bytes") != total:
        problems.append(f"manifest.json: val_bytes {manifest.get('val_bytes')!r} but the documents hold {total:,} bytes")
    if manifest.get("val_documents") not in (None, len(entries)):
        problems.append(f"manifest.json: val_documents {manifest.get('val_documents')!r} but {len(entries)} are listed")
    return ValDocuments(dataset_dir, tuple(documents), tuple(problems), manifest)


def dataset_tokenizer_path(dataset_dir: Path, manifest: Mapping[str, Any]) -> Path:
    entry = manifest.get("tokenizer")
    name = entry.get("file") if isinstance(entry, dict) else None
    if isinstance(name, str) and _SAFE_DOC_NAME.match(name):
        return dataset_dir / name
    for candidate in ("tokenizer.model", "tokenizer.json"):
        if (dataset_dir / candidate).is_file():
            return dataset_dir / candidate
    raise RecordError(dataset_dir, "no tokenizer.model or tokenizer.json in the dataset")


def record_tokenizer_path(folder: Path) -> Path | None:
    """The record's own tokenizer (`*.model` or `tokenizer.json` at its top level), or None if it ships none."""
    candidates = sorted(p for p in folder.iterdir() if p.suffix == ".model" or p.name == "tokenizer.json")
    if not candidates:
        return None
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            raise RecordError(path, "tokenizer file is a symlink or not a regular file; the judge does not follow it")
    if len(candidates) == 1:
        return candidates[0]
    if folder / "tokenizer.model" in candidates:
        return folder / "tokenizer.model"
    raise RecordError(folder, f"several tokenizer files ({', '.join(p.name for p in candidates)}); ship one")


# --- the audit of one tokenizer on one text ---------------------------------------------------------------------


@dataclass(frozen=True)
class AuditResult:
    """What the judge found: the tokenizer, the stream counts, the round trip, and a table comparison."""

    truth: TokenizerTruth
    stats: StreamStats
    table: TableComparison | None  # the given table (or None when none was given)
    findings: tuple[str, ...]  # tokenizer properties worth naming, whatever the table says

    @property
    def roundtrip_ok(self) -> bool:
        return self.stats.mismatched_documents == 0

    def compare(self, table: ByteTable) -> TableComparison:
        return compare_table(self.truth, self.stats, table)

    def summary_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "tokenizer": str(self.truth.path),
            "tokenizer_sha256": self.truth.sha256,
            "tokenizer_kind": self.truth.kind,
            "vocab_size": self.truth.vocab_size,
            "tokenizer_properties": dict(self.truth.properties),
            "has_standalone_space": self.truth.has_standalone_space,
            "documents": s.documents,
            "val_bytes": s.original_bytes,
            "val_tokens": s.tokens,
            "targets": s.targets,
            "decoded_bytes": s.decoded_bytes,
            "space_triples": s.space_triples,
            "dummy_prefix_drops": s.dummy_prefix_drops,
            "mismatched_documents": s.mismatched_documents,
            "findings": list(self.findings),
        }


def tokenizer_findings(truth: TokenizerTruth) -> tuple[str, ...]:
    """Properties that make byte accounting easy to get wrong; named even when this text does not trip them."""
    if truth.kind != "sentencepiece":
        return ()
    found = []
    if not truth.has_standalone_space:
        found.append("no standalone ▁ piece: a lone space is byte-encoded as <0xE2><0x96><0x81> (docs/FAILURES.md C1)")
    whitespace_only = [p for p, m in zip(truth.pieces, truth.space_marks, strict=True) if m >= 2 and set(p) == {SPACE_MARK}]
    if whitespace_only:
        found.append(f"{len(whitespace_only)} whitespace-only piece(s) with several ▁, e.g. {whitespace_only[0]!r}: "
                     "each ▁ is one space byte, not 3 (docs/FAILURES.md C1)")
    props = truth.properties
    if truth.add_dummy_prefix:
        found.append("adds a dummy ▁ at each document start: it stands for no byte")
    if props.get("normalization") not in ("identity", None):
        found.append(f"normalization {props.get('normalization')!r} can change the text (lossy)")
    if props.get("remove_extra_whitespaces"):
        found.append("remove_extra_whitespaces collapses runs of spaces (lossy)")
    if not props.get("byte_fallback"):
        found.append("no byte fallback: characters outside the vocabulary become <unk> (lossy)")
    return tuple(found)


def audit_tokenizer(
    tokenizer_path: str | Path,
    texts: Sequence[bytes | str],
    byte_table: ByteTable | np.ndarray | None = None,
    *,
    names: Sequence[str] | None = None,
    num_threads: int = 2,
) -> AuditResult:
    """Encode every text as the dataset does, decode it with the judge's table, and compare `byte_table`.

    Raises TokenizerError (unreadable tokenizer, a document that is not UTF-8) and TableError (a table of the
    wrong shape or dtype). A bare array is taken as a table without the leading-space flag.
    """
    truth = load_tokenizer(tokenizer_path)
    names = list(names) if names is not None else [f"document {i}" for i in range(len(texts))]
    documents = ((name, text.encode("utf-8") if isinstance(text, str) else bytes(text)) for name, text in zip(names, texts, strict=True))
    stats = scan_documents(truth, documents, num_threads=num_threads)
    if isinstance(byte_table, np.ndarray):
        byte_table = ByteTable(values=byte_table, leading_space_after_bos_is_free=None, source="given table")
    comparison = compare_table(truth, stats, byte_table) if byte_table is not None else None
    return AuditResult(truth=truth, stats=stats, table=comparison, findings=tokenizer_findings(truth))


# --- running a script's byte-table entry point -------------------------------------------------------------------


@dataclass(frozen=True)
class TableRun:
    status: str  # "ok" | "absent" (no entry point) | "failed"
    table: ByteTable | None
    message: str
    sandbox_note: str = ""
    skipped_files: tuple[str, ...] = ()


def _make_removable(root: Path) -> None:
    """A child may leave read-only folders behind; give them back write permission so they can be removed."""
    for folder, dirs, _ in os.walk(root, followlinks=False):
        for name in dirs:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(path):
                    os.chmod(path, stat.S_IRWXU)


@contextlib.contextmanager
def private_workdir(prefix: str = "pg-byte-table-") -> Iterator[Path]:
    """A temporary folder that is removed on the way out, whatever a child did to its permissions."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        _make_removable(root)
        shutil.rmtree(root, ignore_errors=True)


def _script_has_entry_point(script: Path) -> tuple[bool, str]:
    try:
        source, _ = paths.read_regular_file(script, MAX_SCRIPT_BYTES, follow_symlinks=False)
    except FileNotFoundError:
        return False, f"no {SCRIPT_NAME}"
    except (OSError, ValueError) as e:
        return False, f"{SCRIPT_NAME} is unreadable ({getattr(e, 'strerror', None) or e}; symlinks are refused)"
    if ENTRY_POINT not in source:
        # Never run a script without the entry point: it would ignore the arguments and start training.
        return False, f"{SCRIPT_NAME} has no `byte-table` entry point"
    return True, ""


def run_byte_table(
    folder: Path,
    tokenizer_path: Path,
    vocab_size: int,
    *,
    label: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    script_only: bool = False,
) -> TableRun:
    """`python train_gpt.py byte-table --tokenizer T --out OUT.npy` from a private copy of `folder`, sandboxed.

    script_only copies just train_gpt.py (the repository's baseline: the rest of the repository is not its).
    """
    from tools.verify.reproduce import copy_record_privately
    from tools.verify.sandbox import run_sandboxed

    present, why = _script_has_entry_point(folder / SCRIPT_NAME)
    if not present:
        return TableRun("absent", None, f"{label}: {why}")
    with private_workdir() as workspace:
        copy = workspace / "record"
        if script_only:
            copy.mkdir()
            data, _ = paths.read_regular_file(folder / SCRIPT_NAME, MAX_SCRIPT_BYTES, follow_symlinks=False)
            (copy / SCRIPT_NAME).write_bytes(data)
            skipped: list[str] = []
        else:
            skipped = copy_record_privately(folder, copy)
        judge_dir = copy / ".judge_byte_table"
        judge_dir.mkdir()
        tokenizer_bytes, _ = paths.read_regular_file(tokenizer_path, MAX_TOKENIZER_FILE_BYTES, follow_symlinks=False)
        (judge_dir / tokenizer_path.name).write_bytes(tokenizer_bytes)
        out_rel = f"{judge_dir.name}/byte_table.npy"
        argv = ["python", SCRIPT_NAME, "byte-table", "--tokenizer", f"{judge_dir.name}/{tokenizer_path.name}", "--out", out_rel]
        # Read-only copy; the child writes only its judge folder (which also holds the tokenizer it reads).
        result = run_sandboxed(argv, cwd=copy, timeout_s=timeout_s, env={"OMP_NUM_THREADS": "1"}, writable=[judge_dir])
        if result.timed_out:
            return TableRun("failed", None, f"{label}: `byte-table` did not finish within {timeout_s:g} s", result.note, tuple(skipped))
        if result.returncode != 0:
            tail = result.output_tail.strip().splitlines()[-1:] or ["(no output)"]
            return TableRun("failed", None, f"{label}: `byte-table` exited with code {result.returncode}: {tail[0][:300]}",
                            result.note, tuple(skipped))
        try:
            table = load_byte_table(copy / out_rel, vocab_size, source=label)
        except TableError as e:
            message = str(e).replace(str(copy) + os.sep, "")  # name OUT.npy, not our temporary path
            return TableRun("failed", None, f"{label}: `byte-table` output rejected: {message}", result.note, tuple(skipped))
        return TableRun("ok", table, f"{label}: table read", result.note, tuple(skipped))


# --- what the record itself says -------------------------------------------------------------------------------


def logged_val_counts(folder: Path) -> dict[str, tuple[int, int]]:
    """{log name: (val_tokens, val_bytes)} from each shipped log's `val_tokens:N val_bytes:N` line (the last one)."""
    found: dict[str, tuple[int, int]] = {}
    for path in sorted(folder.glob("*.log")):
        try:
            raw, _ = paths.read_regular_file(path, MAX_LOG_BYTES, follow_symlinks=False)
        except (OSError, ValueError):
            continue  # unreadable logs are `verify record`'s finding, not this audit's
        text = raw.decode("utf-8", errors="replace")
        body = text.split(LOG_SEPARATOR, 1)[1] if LOG_SEPARATOR in text else text  # skip the embedded source
        matches = _LOGGED_VAL.findall(body)
        if matches:
            found[path.name] = (int(matches[-1][0]), int(matches[-1][1]))
    return found


def claimed_val_bpb(folder: Path) -> float | None:
    try:
        raw, truncated = paths.read_regular_file(folder / "submission.json", MAX_SUBMISSION_BYTES, follow_symlinks=False)
        value = json.loads(raw).get("val_bpb") if not truncated else None
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# --- checks -----------------------------------------------------------------------------------------------------


def _pct(fraction: float) -> str:
    return f"{100 * fraction:+.3f}%"


def roundtrip_check(audit: AuditResult) -> CheckResult:
    s = audit.stats
    evidence = audit.summary_json()
    if audit.roundtrip_ok:
        message = (f"{s.documents} document(s), {s.original_bytes:,} bytes, {s.tokens:,} tokens: decoding every token with "
                   "the judge's table gives back the original text exactly")
        return CheckResult("tokenizer_roundtrip", "pass", message, evidence)
    assert s.first_mismatch is not None
    evidence["first_mismatch"] = {
        "document": s.first_mismatch.document,
        "offset": s.first_mismatch.offset,
        "before": s.first_mismatch.before.decode("utf-8", errors="backslashreplace"),
        "expected": s.first_mismatch.expected.decode("utf-8", errors="backslashreplace"),
        "decoded": s.first_mismatch.decoded.decode("utf-8", errors="backslashreplace"),
        "tokens": [list(t) for t in s.first_mismatch.tokens],
    }
    message = (f"{s.mismatched_documents} of {s.documents} document(s) do not decode to the original text "
               f"({s.decoded_bytes:,} bytes decoded, {s.original_bytes:,} original); first: {s.first_mismatch.describe()}")
    return CheckResult("tokenizer_roundtrip", "fail", message, evidence)


def describe_comparison(comparison: TableComparison, claimed_bpb: float | None = None) -> str:
    """One line: the table's total against the truth, its bpb effect, and the classes that explain it."""
    c = comparison
    text = (f"{c.source} counts {c.table_bytes:,} bytes for {c.true_bytes:,} true bytes "
            f"({c.error_bytes:+,} bytes, {_pct(c.error_fraction)})")
    effect = c.bpb_effect(claimed_bpb)
    if c.error_bytes and "true_bpb" in effect:
        text += (f": claimed val_bpb {effect['claimed_bpb']:.4f} is {effect['true_bpb']:.4f} with the true denominator "
                 f"({effect['bpb_difference']:+.4f})")
    elif c.error_bytes and "relative" in effect:
        text += f": every bpb computed with it is {_pct(effect['relative'])} off"
    if c.classes:
        text += "; " + "; ".join(
            f"{k.id}: {k.token_ids} id(s), {k.targets:,} target(s), {k.byte_error:+,} bytes" for k in c.classes
        )
    return text


def table_check(
    audit: AuditResult,
    comparison: TableComparison | None,
    *,
    run: TableRun | None = None,
    claimed_bpb: float | None = None,
    logged: Mapping[str, tuple[int, int]] | None = None,
) -> CheckResult:
    """`tokenizer_bytes`: fail on any byte difference of the compared table, of a failed run, or of a log.

    `run` is the record's own `byte-table` run; when it is absent, `comparison` is the stand-in (the baseline's
    table) and the verdict is at best a warning, since the record's own accounting stays unknown.
    """
    true_bytes = audit.stats.original_bytes
    evidence: dict[str, Any] = {"true_bytes": true_bytes, "claimed_val_bpb": claimed_bpb}
    problems: list[str] = []
    notes: list[str] = []
    if run is not None:
        evidence["record_table"] = {"status": run.status, "message": run.message, "sandbox": run.sandbox_note,
                                    "skipped_files": list(run.skipped_files)}
        if run.status == "failed":
            problems.append(run.message)
        elif run.status == "absent":
            notes.append(f"{run.message}: the record's own byte accounting is unknown")
    if comparison is not None:
        evidence["comparison"] = comparison.to_json()
        evidence["bpb_effect"] = comparison.bpb_effect(claimed_bpb)
        if comparison.error_bytes:
            problems.append(describe_comparison(comparison, claimed_bpb))
        elif comparison.wrong_ids:
            notes.append(f"{comparison.source} is wrong for {comparison.wrong_ids} id(s) that do not change this "
                         "validation set's total: " + "; ".join(f"{k.id} ({k.token_ids} ids)" for k in comparison.classes))
    for name, (tokens, logged_bytes) in sorted((logged or {}).items()):
        evidence.setdefault("logged", {})[name] = {"val_tokens": tokens, "val_bytes": logged_bytes}
        if logged_bytes != true_bytes:
            error = (logged_bytes - true_bytes) / true_bytes if true_bytes else math.nan
            line = f"{name}: logged val_bytes {logged_bytes:,} but the validation text has {true_bytes:,} ({_pct(error)})"
            if claimed_bpb is not None and true_bytes:
                line += (f"; claimed val_bpb {claimed_bpb:.4f} is {claimed_bpb * logged_bytes / true_bytes:.4f} "
                         "with the true denominator")
            problems.append(line)
    status: Status
    if problems:
        status, message = "fail", "; ".join(notes[:1] + problems + notes[1:])  # "accounting unknown" reads first
    elif comparison is None:
        status, message = "warn", "; ".join(notes + ["no byte table to compare"])
    elif notes:
        status, message = "warn", "; ".join([*notes, describe_comparison(comparison)])
    else:
        status, message = "pass", describe_comparison(comparison, claimed_bpb)
    return CheckResult("tokenizer_bytes", status, message, evidence)


# --- the record audit --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordAudit:
    """Everything `verify tokenizer PATH` shows: the checks plus the details behind them."""

    record: str
    tokenizer_path: Path
    tokenizer_origin: str  # "record" | "dataset"
    dataset_dir: Path
    checks: tuple[CheckResult, ...]
    audit: AuditResult | None = None
    comparisons: tuple[TableComparison, ...] = ()
    mode: str = "the track's validation set"  # or tools.verify.tokenizer.shipped.AUDIT_NAME
    header: tuple[str, ...] = ()  # report lines that say what was audited, when `audit` cannot

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)


def _load_track(track_id: str, tracks: Mapping[str, Track] | None, folder: Path) -> Track:
    if tracks is None:
        from tools.records.tracks import load_tracks

        tracks = load_tracks()
    if track_id not in tracks:
        raise RecordError(folder, f"unknown track {track_id!r} (the record's parent folder); known: {', '.join(sorted(tracks))}")
    return tracks[track_id]


def audit_record_detailed(
    folder: str | Path,
    *,
    tracks: Mapping[str, Track] | None = None,
    datasets_root: str | Path | None = None,
    repo_root: str | Path | None = None,
    track_id: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    num_threads: int = 2,
) -> RecordAudit:
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise RecordError(folder, "not a record folder")
    track = _load_track(track_id or folder.resolve().parent.name, tracks, folder)
    dataset_dir = Path(datasets_root or paths.datasets_root()) / track.dataset
    service = not_applicable(track, f"the tokenizer is the fixed {track.tokenizer!r} one (token = byte value, "
                                    f"each counts 1 byte) and the service divides by the validation bytes it "
                                    f"counted itself (each log's val_bytes, checked by `verify record`'s dataset)")
    if service is not None:
        checks = tuple(CheckResult(check_id, "skip", service, {"not_applicable": True})
                       for check_id in ("val_documents", "tokenizer_roundtrip", "tokenizer_bytes"))
        return RecordAudit(str(folder), Path(track.tokenizer), "track", dataset_dir, checks,
                           mode="not applicable on this track")
    if not os.path.lexists(dataset_dir / "manifest.json"):  # the track's data is not on this machine
        shipped = _shipped_instead(folder, dataset_dir, datasets_root, num_threads)
        if shipped is not None:
            return shipped
    val = read_val_documents(dataset_dir)
    if not any(isinstance(d, dict) and d.get("split") == "val" for d in val.manifest["documents"]):
        # A dataset built from published token shards has no raw validation text to recount.
        shipped = _shipped_instead(folder, dataset_dir, datasets_root, num_threads)
        if shipped is not None:
            return shipped
    own = record_tokenizer_path(folder)
    tokenizer_path, origin = (own, "record") if own is not None else (dataset_tokenizer_path(dataset_dir, val.manifest), "dataset")
    where = f"{dataset_dir.name}/val_docs"
    if val.problems:
        message = f"{len(val.problems)} problem(s): " + "; ".join(val.problems[:3])
        skip = "skipped: the validation text does not match its manifest"
        checks = (
            CheckResult("val_documents", "fail", message, {"problems": list(val.problems)}),
            CheckResult("tokenizer_roundtrip", "skip", skip),
            CheckResult("tokenizer_bytes", "skip", skip),
        )
        return RecordAudit(str(folder), tokenizer_path, origin, dataset_dir, checks)
    val_check = CheckResult("val_documents", "pass",
                            f"{where}: {len(val.documents)} document(s), {val.total_bytes:,} bytes match the manifest",
                            {"documents": len(val.documents), "val_bytes": val.total_bytes})
    try:
        audit = audit_tokenizer(tokenizer_path, [d for _, d in val.documents],
                                names=[f"{where}/{n}" for n, _ in val.documents], num_threads=num_threads)
    except (TokenizerError, TableError) as e:
        raise _record_error(e) from None
    run = run_byte_table(folder, tokenizer_path, audit.truth.vocab_size, label="record's train_gpt.py byte-table",
                         timeout_s=timeout_s)
    if run.status == "ok" and run.table is not None:
        comparison = audit.compare(run.table)
    else:
        comparison = _baseline_comparison(audit, tokenizer_path, repo_root, timeout_s)
    bytes_check = table_check(audit, comparison, run=run, claimed_bpb=claimed_val_bpb(folder),
                              logged=logged_val_counts(folder))
    bytes_check.evidence["tokenizer_origin"] = origin  # type: ignore[index]
    roundtrip = roundtrip_check(audit)
    expected_tokens = val.manifest.get("val_tokens")
    if origin == "dataset" and isinstance(expected_tokens, int) and expected_tokens != audit.stats.tokens:
        # The shards were not made the way this audit encodes: what the trainer scores is not what was audited.
        note = (f"manifest.json says val_tokens {expected_tokens:,} but [BOS] + encode(doc) gives "
                f"{audit.stats.tokens:,} tokens")
        roundtrip = CheckResult(roundtrip.id, "warn" if roundtrip.status == "pass" else roundtrip.status,
                                f"{roundtrip.message}; {note}", roundtrip.evidence)
    checks = (val_check, roundtrip, bytes_check)
    return RecordAudit(str(folder), tokenizer_path, origin, dataset_dir, checks, audit, (comparison,))


def _shipped_instead(folder: Path, dataset_dir: Path, datasets_root: str | Path | None,
                     num_threads: int) -> RecordAudit | None:
    """Without the track's validation text, a record that ships its own vocabulary or byte table is audited from
    those files on the judge's probe corpus (tools.verify.tokenizer.shipped); None when it ships neither."""
    from tools.verify.tokenizer import shipped as shipped_tokenizer

    files = shipped_tokenizer.find_shipped(folder)
    if not files.any:
        return None
    result = shipped_tokenizer.audit_shipped(folder, datasets_root=datasets_root, num_threads=num_threads)
    where = files.vocabulary or files.table
    assert where is not None
    return RecordAudit(str(folder), where, "record", dataset_dir, result.checks, None, result.comparisons,
                       mode=shipped_tokenizer.AUDIT_NAME, header=result.header)


def _record_error(error: Exception) -> RecordError:
    """TokenizerError/TableError messages are "<where>: <what>"; keep both parts for the one-line error."""
    where, _, what = str(error).partition(": ")
    return RecordError(where, what or str(error))


def _baseline_comparison(audit: AuditResult, tokenizer_path: Path, repo_root: str | Path | None,
                         timeout_s: float) -> TableComparison:
    """The baseline trainer's table for this tokenizer (run like a record's), else the judge's contract rule."""
    root = Path(repo_root) if repo_root is not None else paths.repo_root()
    run = run_byte_table(root, tokenizer_path, audit.truth.vocab_size, label="baseline train_gpt.py byte-table",
                         timeout_s=timeout_s, script_only=True)
    if run.status == "ok" and run.table is not None:
        return audit.compare(run.table)
    return audit.compare(contract_table(audit.truth, source=f"the contract's per-token rule ({run.message})"))


def audit_record(folder: str | Path, **options: Any) -> list[CheckResult]:
    """Checks `val_documents`, `tokenizer_roundtrip` and `tokenizer_bytes` for one record folder.

    Options: tracks, datasets_root, repo_root, track_id, timeout_s, num_threads (see audit_record_detailed).
    Raises RecordError for unreadable input (missing dataset, unreadable tokenizer, unknown track).
    """
    return list(audit_record_detailed(folder, **options).checks)


def audit_texts(
    tokenizer_path: str | Path,
    text_paths: Sequence[str | Path],
    *,
    table_path: str | Path | None = None,
    num_threads: int = 2,
) -> tuple[AuditResult, tuple[CheckResult, ...]]:
    """`verify tokenizer --tokenizer MODEL --text FILE...`: each file one document; --table optional."""
    texts, names = [], []
    for path in map(Path, text_paths):
        try:
            data, truncated = paths.read_regular_file(path, MAX_DOCUMENT_BYTES)
        except (OSError, ValueError) as e:
            raise RecordError(path, f"cannot read text: {getattr(e, 'strerror', None) or e}") from None
        if truncated:
            raise RecordError(path, f"larger than {MAX_DOCUMENT_BYTES:,} bytes")
        texts.append(data)
        names.append(str(path))
    try:
        audit = audit_tokenizer(tokenizer_path, texts, names=names, num_threads=num_threads)
        table = (load_byte_table(table_path, audit.truth.vocab_size, source=f"table {table_path}")
                 if table_path is not None else contract_table(audit.truth, source="the contract's per-token rule"))
    except (TokenizerError, TableError) as e:
        raise _record_error(e) from None
    comparison = audit.compare(table)
    checks = (roundtrip_check(audit), table_check(audit, comparison))
    return AuditResult(audit.truth, audit.stats, comparison, audit.findings), checks

"""`verify tokenizer`: audit the bpb denominator (byte accounting) of a record or of a tokenizer on given texts."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from tools.records.model import CheckResult, RecordError
from tools.text_table import format_table
from tools.verify.commands.options import require_sandbox, ruleset_option
from tools.verify.sandbox import UNISOLATED_FLAG_HELP, unisolated_mode


def _class_table(comparison) -> list[str]:
    if not comparison.classes:
        return []
    rows = [("class", "ids", "targets", "byte error", "what")]
    rows += [(k.id, f"{k.token_ids:,}", f"{k.targets:,}", f"{k.byte_error:+,}", k.title) for k in comparison.classes]
    lines = [f"byte error by class ({comparison.source}):"]
    lines += format_table(rows, right=(1, 2, 3), loose=(4,), indent="  ")
    for k in comparison.classes:
        if k.examples:
            lines.append(f"  e.g. {k.id}: " + "; ".join(k.examples[:3]))
    return lines


def format_report(title: str, audit, checks: Sequence[CheckResult], comparisons: Sequence, origin: str | None,
                  header: Sequence[str] = ()) -> str:
    """What was audited, the checks (the shared table of tools.verify.report_format), then the byte error by class."""
    from tools.verify.report_format import render_checks

    lines = [title, *header]
    if audit is not None:
        truth, stats = audit.truth, audit.stats
        lines.append(f"tokenizer: {truth.path}{f' (from the {origin})' if origin else ''}: {truth.describe()}")
        lines.append(f"validation: {stats.documents:,} document(s), {stats.original_bytes:,} bytes, "
                     f"{stats.tokens:,} tokens ({stats.targets:,} scored targets)")
        lines += [f"note: {finding}" for finding in audit.findings]
    failed = [c.id for c in checks if c.status == "fail"]
    verdict = f"FAILED ({', '.join(failed)})" if failed else "PASSED"
    lines += [f"verdict: {verdict}", "", render_checks(checks)]
    for comparison in comparisons:
        lines += ["", *_class_table(comparison)]
    return "\n".join(lines)


@contextlib.contextmanager
def _terminate_like_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP (a cancelled CI job) take the Ctrl-C path, so the sandbox kills the record's process group
    and the private copy is removed on the way out."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fail_usage(where: str, what: str) -> None:
    click.echo(f"error: {where}: {what}", err=True)
    sys.exit(2)


def _run(path, tokenizer_path, text_paths, table_path, datasets_root, track_id, timeout_s, num_threads, ruleset=None):
    """Audit a record (PATH) or a tokenizer on texts; RecordError for unreadable input."""
    from tools.verify.tokenizer import audit as tokenizer_audit

    if path is not None:
        tracks = None
        if ruleset is not None:
            from tools.records.rulesets import load_ruleset

            tracks = load_ruleset(ruleset)
        result = tokenizer_audit.audit_record_detailed(
            path, tracks=tracks, datasets_root=datasets_root, track_id=track_id, timeout_s=timeout_s,
            num_threads=num_threads,
        )
        return (result.audit, result.checks, result.comparisons, f"verify tokenizer {path}", result.tokenizer_origin,
                str(result.tokenizer_path), result.mode, result.header)
    audit, checks = tokenizer_audit.audit_texts(tokenizer_path, text_paths, table_path=table_path,
                                                num_threads=num_threads)
    comparisons = (audit.table,) if audit.table is not None else ()
    return (audit, checks, comparisons, f"verify tokenizer --tokenizer {tokenizer_path}", None, str(tokenizer_path),
            "the given texts", ())


@click.command("tokenizer")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--tokenizer", "tokenizer_path", type=click.Path(path_type=Path), metavar="MODEL",
              help="Audit this tokenizer (.model or byte tokenizer.json) on --text files instead of a record.")
@click.option("--text", "text_paths", multiple=True, type=click.Path(path_type=Path), metavar="FILE",
              help="A validation document (raw bytes); repeat for several. Needs --tokenizer.")
@click.option("--table", "table_path", type=click.Path(path_type=Path), metavar="OUT.npy",
              help="A byte table (int64 [V], sibling OUT.json optional) to check; default: the contract's rule.")
@click.option("--datasets-root", type=click.Path(path_type=Path), metavar="DIR",
              help="Prepared datasets (default: $PG_DATASETS_ROOT, else <repo>/data/datasets).")
@click.option("--track", "track_id", metavar="ID", help="Judge PATH as a record of this track (default: its parent folder).")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True, metavar="S",
              help="Time limit for the record's `train_gpt.py byte-table` run.")
@click.option("--threads", "num_threads", type=click.IntRange(1, 64), default=2, show_default=True,
              help="SentencePiece encoding threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--unisolated", is_flag=True, help=UNISOLATED_FLAG_HELP)
@ruleset_option
def command(path: Path | None, tokenizer_path: Path | None, text_paths: tuple[Path, ...], table_path: Path | None,
            datasets_root: Path | None, track_id: str | None, timeout_s: float, num_threads: int, as_json: bool,
            unisolated: bool, ruleset: str | None) -> None:
    """Check that a record's bpb denominator is the true byte count of the validation text.

    \b
    Record mode (PATH): the tokenizer is the record's own (*.model or tokenizer.json in PATH) or else the
    track's dataset tokenizer; the text is the dataset's val_docs/. Checks:
      val_documents        every val document's bytes and sha256 equal the manifest's
      tokenizer_roundtrip  [BOS] + encode(doc), decoded with the judge's own per-token bytes, is the
                           original text exactly (else: first mismatch, its document, offset and tokens)
      tokenizer_bytes      the record's own table (`python train_gpt.py byte-table`, run sandboxed from a
                           private copy; else the baseline's, and a warning) summed over the scored targets
                           equals the true byte count; logged val_bytes too. A difference is explained by
                           class (leading space counted twice, byte token as U+FFFD, no standalone ▁,
                           ▁ as 3 bytes, partial UTF-8 pieces, control tokens counted, dummy prefix)
                           with ids, targets and bytes affected, and its effect on the claimed val_bpb.

    \b
    Without the track's validation text here (the main track's FineWeb), a record that ships its own
    vocabulary (SentencePiece *.model, TokenMonster *.vocab) and/or byte table (*.meta.npz: base_bytes,
    has_leading_space, is_boundary_token) is audited from those files instead ("shipped files + probe
    corpus"): every id's count against what it decodes to, then the table's public rule summed over the
    judge's probe corpus (Shakespeare validation when prepared, plus generated non-ASCII, byte-fallback and
    whitespace-rich text) against the bytes the tokens decode to in context.

    \b
    Text mode (--tokenizer MODEL --text FILE...): each FILE is one document; --table OUT.npy is checked
    (default: the contract's per-token rule, which shows whether any per-token table can be right).

    \b
    Examples:
      verify tokenizer records/track_cpu_shakespeare/2026-01-15_baseline
      verify tokenizer --tokenizer data/datasets/shakespeare_sp1024/tokenizer.model \\
          --text data/datasets/shakespeare_sp1024/val_docs/*.txt --table my_table.npy --json

    \b
    Output: a table on stdout, or --json {"ok", "record", "stats", "tokenizer", "checks": [{id, status,
    message, evidence}], "comparisons": [...]}. Exit codes: 0 passed (warnings allowed), 1 a check failed,
    2 bad usage or unreadable input (one line: error: <where>: <what>), 130 interrupted (Ctrl-C, SIGTERM).
    """
    from tools.verify.report_format import json_safe

    if path is not None and (tokenizer_path is not None or text_paths):
        _fail_usage(str(path), "give either a record PATH or --tokenizer with --text, not both")
    if path is None and (tokenizer_path is None or not text_paths):
        _fail_usage("verify tokenizer", "give a record PATH, or --tokenizer MODEL with at least one --text FILE")
    if path is not None and table_path is not None:
        _fail_usage(str(table_path), "--table goes with --tokenizer/--text; a record's table comes from its script")
    if path is not None:  # text mode runs no record code
        require_sandbox(unisolated)
    try:
        with _terminate_like_interrupt(), unisolated_mode(unisolated):
            audit, checks, comparisons, title, origin, tokenizer, mode, header = _run(
                path, tokenizer_path, text_paths, table_path, datasets_root, track_id, timeout_s, num_threads, ruleset
            )
    except RecordError as e:
        _fail_usage(e.where, e.message)
        return
    except KeyboardInterrupt:
        click.echo(f"error: {path or tokenizer_path}: interrupted; the record's process and temporary copy were removed",
                   err=True)
        sys.exit(130)
    ok = not any(c.status == "fail" for c in checks)
    if as_json:
        payload = {  # the shape of `verify record --json`, with evidence and the audit's details added
            "ok": ok,
            "record": str(path if path is not None else tokenizer_path),
            "audit": mode,
            "header": list(header),
            "stats": {},
            "tokenizer": audit.summary_json() if audit is not None else {"tokenizer": tokenizer},
            "checks": [{"id": c.id, "status": c.status, "message": c.message, "evidence": dict(c.evidence)} for c in checks],
            "comparisons": [c.to_json() for c in comparisons],
        }
        click.echo(json.dumps(json_safe(payload), indent=2, ensure_ascii=False, allow_nan=False))
    else:
        click.echo(format_report(title, audit, checks, comparisons, origin, header))
    sys.exit(0 if ok else 1)

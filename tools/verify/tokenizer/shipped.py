"""Tokenizer audit from a record's shipped files, for a track whose validation text is not on this machine.

A record that brings its own vocabulary (SentencePiece `.model`, TokenMonster `.vocab`, byte `tokenizer.json`)
and usually its own byte table (`*.meta.npz`) is audited in two steps, never from the table alone:
1. the vocabulary sweep: every id's count in the table against what the id decodes to, each difference
   attributed to the known bug classes (tools.verify.tokenizer.byte_table): e.g. a byte-fallback token counted as the 3
   bytes of U+FFFD, the public record removed in PR #1806;
2. the probe corpus (tools.verify.tokenizer.probe_corpus): encoded with the shipped vocabulary, the table summed with the
   public rule (tools.verify.tokenizer.shipped_table) against the bytes the tokens decode to in context, and the decoded
   text against the original (`tokenizer_roundtrip`).
The result is a measurement on the judge's text, not on the track's validation set: the report says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.records.model import CheckResult, RecordError, Status
from tools.verify.tokenizer.audit import (
    AuditResult,
    _record_error,
    claimed_val_bpb,
    describe_comparison,
    roundtrip_check,
)
from tools.verify.tokenizer.byte_table import (
    BugClassFinding,
    ByteTable,
    TableComparison,
    TableError,
    compare_table,
)
from tools.verify.tokenizer.byte_truth import (
    Mismatch,
    StreamStats,
    TokenizerError,
    TokenizerTruth,
    decode_document,
    load_tokenizer,
    scan_documents,
)
from tools.verify.tokenizer.probe_corpus import ProbeCorpus, probe_corpus
from tools.verify.tokenizer.shipped_table import META_SUFFIX, ShippedTable, baseline_rule, formula_bytes, read_meta_npz
from tools.verify.tokenizer.tokenmonster_vocab import (
    TokenMonsterTruth,
    looks_like_tokenmonster,
    read_vocab,
    tokenmonster_truth,
)
from tools.verify.tokenizer.tokenmonster_vocab import encode as tokenmonster_encode

AUDIT_NAME = "shipped files + probe corpus"
CONTEXT_CLASS = ("context_rule", "the table's context rule (leading space free after a boundary token) does not match "
                 "what the tokens decode to in context (e.g. a TokenMonster delete marker removing the next space)")
TOKENMONSTER_ENCODER_NOTE = ("encoder: the judge's greedy longest match over the vocabulary, not TokenMonster's "
                             "ungreedy search; the ids differ, but a correct table counts any id sequence exactly")


# --- what the record ships -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedFiles:
    vocabulary: Path | None
    kind: str | None  # "sentencepiece" | "byte" | "tokenmonster"
    table: Path | None  # *.meta.npz

    @property
    def any(self) -> bool:
        return self.vocabulary is not None or self.table is not None


def _kind_of(path: Path) -> str | None:
    if path.suffix == ".model":
        return "sentencepiece"
    if path.name == "tokenizer.json":
        return "byte"
    if path.suffix == ".vocab":  # TokenMonster's binary, or SentencePiece's text listing beside a .model
        try:
            with open(path, "rb") as f:
                return "tokenmonster" if looks_like_tokenmonster(f.read(64)) else None
        except OSError:
            return None
    return None


def _candidates(folder: Path) -> list[Path]:
    """Regular files at the top of the record and one folder down (tokenizers/...); a symlink is refused."""
    found = []
    for place in [folder, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())]:
        for path in sorted(place.iterdir()):
            if path.name.endswith(META_SUFFIX) or path.suffix in (".model", ".vocab") or path.name == "tokenizer.json":
                if path.is_symlink() or not path.is_file():
                    raise RecordError(path, "a tokenizer file that is a symlink or not a regular file; the judge does not follow it")
                found.append(path)
    return found


def find_shipped(folder: str | Path) -> ShippedFiles:
    """The record's own vocabulary and byte table, paired by name (`X.meta.npz` goes with `X.vocab`/`X.model`
    or `X.meta.npz` with `X`); RecordError when the pairing is ambiguous."""
    folder = Path(folder)
    files = _candidates(folder)
    tables = [p for p in files if p.name.endswith(META_SUFFIX)]
    vocabularies = [(p, kind) for p in files if not p.name.endswith(META_SUFFIX) and (kind := _kind_of(p))]
    if len(tables) > 1:
        raise RecordError(folder, f"several byte tables ({', '.join(p.name for p in tables)}); the audit takes one")
    table = tables[0] if tables else None
    if table is not None:
        stem = table.name[: -len(META_SUFFIX)]
        named = [(p, k) for p, k in vocabularies if stem in (p.name, p.stem)]
        vocabularies = named or vocabularies
    if len(vocabularies) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p, _ in vocabularies)
        raise RecordError(folder, f"several tokenizer files ({names}) and no byte table naming one of them")
    vocabulary, kind = vocabularies[0] if vocabularies else (None, None)
    return ShippedFiles(vocabulary, kind, table)


# --- streams ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeStream:
    """The probe corpus through one tokenizer: the stream counts and what the public rule needs."""

    truth: TokenizerTruth
    stats: StreamStats  # original_bytes: the probe text; decoded_bytes: what the tokens decode to in context
    segments: tuple[np.ndarray, ...]  # id streams the rule is summed over
    first_is_context: bool  # SentencePiece: one stream opened by BOS; TokenMonster: one stream per document
    per_document: tuple[tuple[str, int, int], ...]  # (name, original bytes, decoded bytes)
    missing_bytes: int = 0  # TokenMonster: bytes no token covered (dropped)
    pending_delete: np.ndarray | None = None  # TokenMonster: ids whose delete marker acts on the next token


def sentencepiece_stream(truth: TokenizerTruth, documents: Sequence[tuple[str, bytes]], num_threads: int = 2) -> ProbeStream:
    """[BOS] + encode(doc) for every document, as the datasets are built; counted by the judge's scan."""
    stats = scan_documents(truth, documents, num_threads=num_threads)
    # The scan keeps counts only; the public rule needs each token's predecessor, so the ids are encoded again.
    encoded = truth.encode_texts([text for _, text in documents], num_threads=num_threads)
    stream = np.fromiter((i for ids in encoded for i in (truth.bos_id, *ids)), np.int64)
    per_document = tuple((name, len(text), len(decode_document(truth, ids)[0]))
                         for (name, text), ids in zip(documents, encoded, strict=True))
    return ProbeStream(truth, stats, (stream,), True, per_document)


def tokenmonster_stream(tm: TokenMonsterTruth, documents: Sequence[tuple[str, bytes]]) -> ProbeStream:
    """Each document encoded and decoded on its own (TokenMonster has no BOS); every id is a scored target."""
    truth = tm.truth
    stats = StreamStats(vocab_size=truth.vocab_size)
    dictionary = dict(tm.vocab.keys)
    segments, per_document, missing = [], [], 0
    for name, text in documents:
        ids, dropped = tokenmonster_encode(tm.vocab, text, dictionary)
        decoded = tm.decode(ids)
        array = np.asarray(ids, np.int64)
        segments.append(array)
        per_document.append((name, len(text), len(decoded)))
        missing += dropped
        stats.documents += 1
        stats.tokens += len(ids)
        stats.original_bytes += len(text)
        stats.decoded_bytes += len(decoded)
        stats.target_counts += np.bincount(array, minlength=truth.vocab_size)
        if decoded != text:
            stats.mismatched_documents += 1
            if stats.first_mismatch is None:
                stats.first_mismatch = _tokenmonster_mismatch(tm, name, text, decoded, ids)
    return ProbeStream(truth, stats, tuple(segments), False, tuple(per_document), missing, tm.pending_delete)


def _tokenmonster_mismatch(tm: TokenMonsterTruth, name: str, original: bytes, decoded: bytes, ids: list[int],
                           context_tokens: int = 4) -> Mismatch:
    """Where decoding first leaves the original. Markers act across tokens, so per-token lengths cannot place
    it; decoding is left to right, so the first id whose prefix stops matching is found by bisection."""
    common = next((i for i, (a, b) in enumerate(zip(original, decoded, strict=False)) if a != b),
                  min(len(original), len(decoded)))
    lo, hi = 0, len(ids)  # invariant: ids[:lo] decodes to a prefix of the original, ids[:hi] does not (or hi = end)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if original.startswith(tm.decode(ids[:mid])):
            lo = mid
        else:
            hi = mid
    index = min(lo, max(len(ids) - 1, 0))
    around = range(max(index - context_tokens, 0), min(index + context_tokens + 1, len(ids)))
    return Mismatch(name, common, original[max(common - 12, 0):common], original[common:common + 16],
                    decoded[common:common + 16], index, tuple((i, ids[i], tm.truth.pieces[ids[i]]) for i in around))


# --- comparisons ------------------------------------------------------------------------------------------------


def vocabulary_sweep(truth: TokenizerTruth, table: ShippedTable) -> TableComparison:
    """Every id counted once against what it decodes to on its own: which ids the table gets wrong, by class."""
    counts = np.ones(truth.vocab_size, np.int64)
    total = int(counts @ truth.byte_counts)
    stats = StreamStats(vocab_size=truth.vocab_size, documents=1, tokens=truth.vocab_size + 1, original_bytes=total,
                        decoded_bytes=total, target_counts=counts)
    return compare_table(truth, stats, ByteTable(table.per_id, False, f"{table.source}, each id once"))


def probe_comparison(stream: ProbeStream, table: ShippedTable) -> TableComparison:
    """The public rule over the probe stream against the bytes the tokens decode to.

    Per-id differences are attributed by compare_table on the per-id counts; what the context does (leading
    spaces the table frees after its boundary tokens, bytes a token removes from the next) is the remainder,
    reported as one `context_rule` class so the classes still add up to the total error.
    """
    truth, stats = stream.truth, stream.stats
    after_bos_free = stream.first_is_context and bool(table.is_boundary_token[truth.bos_id])
    if stream.first_is_context:  # SentencePiece: the scan's own context rules (dummy prefix, ▁ as 3 bytes) apply
        per_id = dataclasses.replace(stats, original_bytes=stats.decoded_bytes, mismatched_documents=0, first_mismatch=None)
    else:
        no_context = int(stats.target_counts @ truth.byte_counts)
        per_id = dataclasses.replace(stats, original_bytes=no_context, decoded_bytes=no_context,
                                     mismatched_documents=0, first_mismatch=None)
    base = compare_table(truth, per_id, ByteTable(table.per_id, after_bos_free, table.source))
    table_bytes = sum(formula_bytes(table, s, first_is_context=stream.first_is_context) for s in stream.segments)
    residual = (table_bytes - stats.decoded_bytes) - base.error_bytes
    classes = base.classes
    if residual:
        freed = int(stats.target_counts @ table.per_id) - table_bytes
        lost = int(stats.target_counts @ truth.byte_counts) - stats.decoded_bytes
        notes = [f"the table frees {freed:,} leading-space byte(s) after boundary tokens; in context the tokens "
                 f"decode to {lost:,} byte(s) fewer than their per-id counts"]
        ids, targets = _pending_delete_context(stream, table, notes)
        classes = (*classes, BugClassFinding(*CONTEXT_CLASS, ids, targets, residual, tuple(notes)))
    return TableComparison(source=f"{table.source} on the probe corpus", table_bytes=table_bytes,
                           true_bytes=stats.decoded_bytes, judge_bytes=stats.decoded_bytes, wrong_ids=base.wrong_ids,
                           leading_space_after_bos_is_free=after_bos_free, classes=classes)


def _pending_delete_context(stream: ProbeStream, table: ShippedTable, notes: list[str]) -> tuple[int, int]:
    """(ids, targets): the tokens whose delete marker the table does not treat as a boundary, and the scored
    tokens right after them; the most frequent are named in `notes`."""
    if stream.pending_delete is None:
        return 0, 0
    previous = np.concatenate([s[:-1] for s in stream.segments]) if stream.segments else np.zeros(0, np.int64)
    hits = previous[stream.pending_delete[previous] & ~table.is_boundary_token[previous]]
    ids, counts = np.unique(hits, return_counts=True)
    for i in np.argsort(-counts, kind="stable")[:3]:
        notes.append(f"after id {int(ids[i])} {stream.truth.pieces[int(ids[i])]!r} (ends with a delete marker, not a "
                     f"boundary in the table): {int(counts[i]):,} target(s)")
    return len(ids), int(counts.sum())


# --- checks -----------------------------------------------------------------------------------------------------


def shipped_roundtrip_check(stream: ProbeStream) -> CheckResult:
    """Pass when the probe text decodes back exactly. A lossy tokenizer (the main track's own sp1024 collapses
    whitespace) is a warning while its text is never longer than the original; a document that decodes to
    *more* bytes than it has fails: a denominator counted on that text is inflated."""
    check = roundtrip_check(AuditResult(stream.truth, stream.stats, None, ()))
    evidence = dict(check.evidence)
    if not stream.first_is_context:
        evidence["targets"] = stream.stats.tokens  # no BOS: every id of every document is scored
    longer = [(n, o, d) for n, o, d in stream.per_document if d > o]
    shorter = [(n, o, d) for n, o, d in stream.per_document if d < o]
    evidence.update(documents_longer=len(longer), bytes_added=sum(d - o for _, o, d in longer),
                    documents_shorter=len(shorter), bytes_lost=sum(o - d for _, o, d in shorter),
                    missing_bytes=stream.missing_bytes)
    status: Status = check.status
    message = f"{AUDIT_NAME}: {check.message}"
    if check.status == "fail":
        if longer:
            worst = max(longer, key=lambda x: x[2] - x[1])
            message += (f"; {len(longer)} document(s) decode to more bytes than they have (+{evidence['bytes_added']:,} "
                        f"bytes, e.g. {worst[0]}: {worst[1]:,} -> {worst[2]:,}): a denominator counted on the "
                        "tokenizer's text is inflated")
        else:
            status = "warn"
            message += (f"; lossy but never longer than the original (-{evidence['bytes_lost']:,} bytes in "
                        f"{len(shorter)} document(s)): it cannot inflate a denominator")
        if stream.missing_bytes:
            message += f"; {stream.missing_bytes:,} byte(s) no token covers were dropped"
    return CheckResult("tokenizer_roundtrip", status, message, evidence)


def _sweep_summary(sweep: TableComparison, size: int) -> str:
    if not sweep.wrong_ids:
        return f"every one of the {size:,} ids counts what it decodes to"
    return (f"{sweep.wrong_ids:,} of {size:,} ids miscounted ("
            + "; ".join(f"{k.id}: {k.token_ids} id(s), e.g. {k.examples[0]}" if k.examples else f"{k.id}: {k.token_ids} id(s)"
                        for k in sweep.classes) + ")")


def shipped_bytes_check(sweep: TableComparison, probe: TableComparison, *, size: int, stand_in: str | None,
                        claimed_bpb: float | None, evidence: dict[str, Any]) -> CheckResult:
    """`tokenizer_bytes`: fail when any id is miscounted or the probe total differs; a table the judge applied in
    the record's place (stand_in: why) is at best a warning."""
    evidence = {**evidence, "audit": AUDIT_NAME, "vocabulary_sweep": sweep.to_json(), "comparison": probe.to_json(),
                "claimed_val_bpb": claimed_bpb, "bpb_effect": probe.bpb_effect(claimed_bpb)}
    text = f"{AUDIT_NAME}: {_sweep_summary(sweep, size)}; {describe_comparison(probe)}"
    effect = evidence["bpb_effect"]
    if probe.error_bytes and "true_bpb" in effect:
        text += (f"; claimed val_bpb {claimed_bpb:.4f} would be {effect['true_bpb']:.4f} on text like the probe corpus")
    status: Status = "fail" if sweep.wrong_ids or probe.error_bytes else "pass"
    if stand_in:
        text = f"{stand_in}; {text}"
        status = "fail" if status == "fail" else "warn"
    return CheckResult("tokenizer_bytes", status, text, evidence)


# --- the audit --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedAudit:
    files: ShippedFiles
    header: tuple[str, ...]  # report lines: which audit ran, on which tokenizer, table and text
    checks: tuple[CheckResult, ...]
    comparisons: tuple[TableComparison, ...] = ()


def _skip(files: ShippedFiles, header: list[str], reason: str, roundtrip: CheckResult | None = None) -> ShippedAudit:
    checks = (
        CheckResult("val_documents", "skip", f"the track's validation text is not on this machine; {reason}"),
        roundtrip or CheckResult("tokenizer_roundtrip", "skip", reason),
        CheckResult("tokenizer_bytes", "skip", reason),
    )
    return ShippedAudit(files, tuple(header), checks)


def _load_truth(files: ShippedFiles) -> tuple[TokenizerTruth, TokenMonsterTruth | None, str]:
    assert files.vocabulary is not None
    try:
        if files.kind == "tokenmonster":
            tm = tokenmonster_truth(read_vocab(files.vocabulary))
            return tm.truth, tm, tm.vocab.describe()
        truth = load_tokenizer(files.vocabulary)
        return truth, None, truth.describe()
    except TokenizerError as e:
        raise _record_error(e) from None


def audit_shipped(folder: str | Path, *, corpus: ProbeCorpus | None = None, datasets_root: str | Path | None = None,
                  num_threads: int = 2) -> ShippedAudit:
    """Checks `val_documents` (skip: not here), `tokenizer_roundtrip` and `tokenizer_bytes` from the record's own
    files and the probe corpus. RecordError for unreadable input (a malformed vocabulary or table)."""
    folder = Path(folder)
    files = find_shipped(folder)
    header = [f"audit: {AUDIT_NAME} (the track's validation text is not on this machine; the figures are the "
              "probe corpus's, not the validation set's)"]
    if not files.any:
        return _skip(files, header, "the record ships no tokenizer or byte table (it uses the track's own)")
    table: ShippedTable | None = None
    if files.table is not None:
        try:
            table = read_meta_npz(files.table)
        except TableError as e:
            raise _record_error(e) from None
        meta = {k: v for k, v in table.metadata.items() if v not in (None, [])}
        header.append(f"byte table: {files.table} ({table.size:,} ids; {meta})")
    if files.vocabulary is None:
        kind = table.metadata.get("tokenizer_kind") if table else None
        return _skip(files, header, f"the record ships a byte table but no vocabulary to check it against "
                                    f"(tokenizer_kind {kind!r}, source {table.metadata.get('source_model_name')!r})")
    truth, tm, description = _load_truth(files)
    header.append(f"tokenizer: {files.vocabulary}: {description}")
    stand_in = None
    if table is None:
        if tm is not None:
            table_missing = "the record ships no byte table for its TokenMonster vocabulary: its accounting is unknown"
        else:
            table = baseline_rule(truth, source="the baseline's rule for its tokenizer")
            stand_in = ("the record ships no byte table (its train_gpt.py is not run by this audit): "
                        "the competition baseline's rule stands in")
    corpus = corpus if corpus is not None else probe_corpus(datasets_root=datasets_root)
    header.append(corpus.describe())
    if tm is not None:
        header.append(TOKENMONSTER_ENCODER_NOTE)
        stream = tokenmonster_stream(tm, corpus.documents)
    else:
        try:
            stream = sentencepiece_stream(truth, corpus.documents, num_threads=num_threads)
        except TokenizerError as e:
            raise _record_error(e) from None
    roundtrip = shipped_roundtrip_check(stream)
    if table is None:
        return _skip(files, header, table_missing, roundtrip)
    fitted = table.fit(truth.vocab_size)
    if table.size != truth.vocab_size:
        header.append(f"note: the table has {table.size:,} entries for {truth.vocab_size:,} ids; as the public loader "
                      "does, missing ids count 0 bytes and extra entries are never used")
    sweep = vocabulary_sweep(truth, fitted)
    probe = probe_comparison(stream, fitted)
    evidence = {"tokenizer": str(files.vocabulary), "tokenizer_sha256": truth.sha256, "table": str(files.table or ""),
                "table_metadata": dict(table.metadata), "probe_corpus": corpus.describe(),
                "relative_error": probe.error_fraction}
    bytes_check = shipped_bytes_check(sweep, probe, size=truth.vocab_size, stand_in=stand_in,
                                      claimed_bpb=claimed_val_bpb(folder), evidence=evidence)
    checks = (
        CheckResult("val_documents", "skip", f"the track's validation text is not on this machine: audited on {AUDIT_NAME}"),
        roundtrip,
        bytes_check,
    )
    return ShippedAudit(files, tuple(header), checks, (sweep, probe))


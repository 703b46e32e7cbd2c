"""Throughput of the tokenizer audit: encode every validation document, decode it with the judge's table, compare.

Targets (docs: issue 4 section 2): the 620,853-byte Shakespeare validation set well under a second, 100 MB of
validation text under 60 s on a 2-core machine. Uses data/datasets/shakespeare_sp1024 when it is prepared, else a
stand-in (a BPE-1024 trained here on synthetic text). The 100 MB set is the validation text repeated with its lines
shuffled and a few characters perturbed per copy, cut into ~100 KB documents.

    python bench/bench_tokenizer_audit.py                 # both sizes, 2 threads
    python bench/bench_tokenizer_audit.py --big-mb 20     # a quicker large case
    python bench/bench_tokenizer_audit.py --threads 1 --threads 2

Prints one row per case: documents, bytes, tokens, seconds for the scan (encode + decode + compare) and for the
table comparison, and MB/s.
"""

from __future__ import annotations

import io
import random
import sys
import tempfile
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.text_table import format_table  # noqa: E402
from tools.verify.tokenizer.audit import read_val_documents  # noqa: E402
from tools.verify.tokenizer.byte_table import compare_table, contract_table  # noqa: E402
from tools.verify.tokenizer.byte_truth import load_tokenizer, scan_documents  # noqa: E402

SHAKESPEARE = REPO / "data" / "datasets" / "shakespeare_sp1024"
STAND_IN_BYTES = 620_853


def stand_in(folder: Path) -> tuple[Path, list[tuple[str, bytes]]]:
    """A BPE-1024 tokenizer and ~620 KB of verse-like text, for machines without the prepared dataset."""
    import sentencepiece as spm

    rng = random.Random(0)
    words = ("thou thee thy lord king love night day sweet come go well speak sir good man more hath doth "
             "what shall would heaven death fair honour café naïve Ægypt").split()
    lines = []
    while sum(map(len, lines)) < 2 * STAND_IN_BYTES:
        indent = "    " if rng.random() < 0.3 else ""
        lines.append(indent + " ".join(rng.choice(words) for _ in range(rng.randint(3, 10))).capitalize() + ".")
    text = "\n".join(lines)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([text[: len(text) // 2]]), model_writer=model,
                                   vocab_size=1024, model_type="bpe", byte_fallback=True,
                                   normalization_rule_name="identity", add_dummy_prefix=False,
                                   remove_extra_whitespaces=False, max_sentence_length=1 << 24, minloglevel=2)
    path = folder / "tokenizer.model"
    path.write_bytes(model.getvalue())
    val = text[len(text) // 2:].encode("utf-8")[:STAND_IN_BYTES]
    val = val[: len(val.decode("utf-8", "ignore").encode("utf-8"))]
    docs = [(f"doc{i}", val[i * len(val) // 5:(i + 1) * len(val) // 5]) for i in range(5)]
    return path, [(n, d) for n, d in docs if d.decode("utf-8", "ignore").encode() == d]


def synthesize(documents: list[tuple[str, bytes]], target_bytes: int, doc_bytes: int = 100_000) -> list[tuple[str, bytes]]:
    """Copies of the text with lines shuffled and a few characters swapped for non-ASCII ones, in ~doc_bytes docs."""
    rng = random.Random(1)
    lines = b"".join(d for _, d in documents).decode("utf-8").split("\n")
    substitutes = ["é", "ß", "Ω", "ж", "—", "’", "😀", "  "]
    out: list[tuple[str, bytes]] = []
    total = 0
    copy = 0
    while total < target_bytes:
        shuffled = lines[:]
        rng.shuffle(shuffled)
        for _ in range(200):  # perturb: new characters, some of them byte-fallback material
            i = rng.randrange(len(shuffled))
            line = shuffled[i]
            if line:
                j = rng.randrange(len(line))
                shuffled[i] = line[:j] + rng.choice(substitutes) + line[j + 1:]
        blob = "\n".join(shuffled).encode("utf-8")
        start = 0
        while start < len(blob) and total < target_bytes:
            end = blob.find(b"\n", start + doc_bytes)
            end = len(blob) if end < 0 else end + 1
            out.append((f"copy{copy}_{start}", blob[start:end]))
            total += end - start
            start = end
        copy += 1
    return out


def measure(tokenizer_path: Path, documents: list[tuple[str, bytes]], threads: int) -> dict:
    truth = load_tokenizer(tokenizer_path)
    start = time.perf_counter()
    stats = scan_documents(truth, documents, num_threads=threads)
    scan_s = time.perf_counter() - start
    start = time.perf_counter()
    comparison = compare_table(truth, stats, contract_table(truth))
    compare_s = time.perf_counter() - start
    assert stats.mismatched_documents == 0 and comparison.error_bytes == 0, "benchmark text must round-trip"
    return {"docs": stats.documents, "bytes": stats.original_bytes, "tokens": stats.tokens, "scan_s": scan_s,
            "compare_s": compare_s}


@click.command()
@click.option("--big-mb", type=float, default=100.0, show_default=True, help="Size of the large synthetic case.")
@click.option("--threads", type=int, multiple=True, help="Encoding threads (repeatable; default 2).")
def main(big_mb: float, threads: tuple[int, ...]) -> None:
    threads = threads or (2,)
    with tempfile.TemporaryDirectory(prefix="bench-tokenizer-audit-") as tmp:
        if (SHAKESPEARE / "manifest.json").is_file():
            val = read_val_documents(SHAKESPEARE)
            tokenizer, documents, source = SHAKESPEARE / "tokenizer.model", list(val.documents), "shakespeare_sp1024"
        else:
            tokenizer, documents = stand_in(Path(tmp))
            source = "stand-in (shakespeare_sp1024 not prepared)"
        big = synthesize(documents, int(big_mb * 1e6))
        header = ("case", "threads", "docs", "bytes", "tokens", "scan s", "compare s", "MB/s", "target")
        rows = [header]
        for count in threads:
            for name, docs, target in ((f"val {source}", documents, "< 1 s"), (f"synthetic {big_mb:g} MB", big, "< 60 s")):
                r = measure(tokenizer, docs, count)
                total = r["scan_s"] + r["compare_s"]
                rows.append((name, str(count), f"{r['docs']:,}", f"{r['bytes']:,}", f"{r['tokens']:,}", f"{r['scan_s']:.3f}",
                             f"{r['compare_s']:.4f}", f"{r['bytes'] / 1e6 / total:.1f}", target))
    print("\n".join(format_table(rows, right=range(1, len(header)))))


if __name__ == "__main__":
    main()

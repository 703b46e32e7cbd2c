"""Filesystem helpers for tests that plant hostile trees."""

from __future__ import annotations

import os
from pathlib import Path


def remove_nested(top: Path, name: str) -> None:
    """Remove a chain of folders `top/name/name/...` bottom-up, by descriptor: shutil.rmtree (and pytest's cleanup
    of old temporary folders) recurses once per level and overflows on the thousands of levels these tests plant."""
    chain = [os.open(top, os.O_RDONLY)]
    while True:
        try:
            chain.append(os.open(name, os.O_RDONLY, dir_fd=chain[-1]))
        except (FileNotFoundError, NotADirectoryError):
            break
    for entry in os.listdir(chain[-1]):  # whatever the deepest level holds
        os.unlink(entry, dir_fd=chain[-1])
    os.close(chain.pop())
    while chain:
        parent = chain.pop()
        os.rmdir(name, dir_fd=parent)
        os.close(parent)

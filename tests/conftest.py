"""Fixtures shared by the test files (a file may still define its own under the same name)."""

from __future__ import annotations

import pytest

from tests.recordkit import make_repo_tree, repo_env


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A repository tree (records/tracks.toml, a tiny dataset manifest per track) with PG_REPO_ROOT and
    PG_DATASETS_ROOT pointing at it."""
    root = make_repo_tree(tmp_path)
    for key, value in repo_env(root).items():
        monkeypatch.setenv(key, value)
    return root

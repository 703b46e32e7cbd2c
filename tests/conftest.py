"""Fixtures shared by the test files (a file may still define its own under the same name)."""

from __future__ import annotations

import tempfile

import pytest

from tests.recordkit import make_repo_tree, repo_env
from tests.test_probes_kit import make_tree


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A repository tree (records/tracks.toml, a tiny dataset manifest per track) with PG_REPO_ROOT and
    PG_DATASETS_ROOT pointing at it."""
    root = make_repo_tree(tmp_path)
    for key, value in repo_env(root).items():
        monkeypatch.setenv(key, value)
    return root


@pytest.fixture
def repo(root):
    """The same tree under the name the submit and leaderboard tests use."""
    return root


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """(root, dataset) for the probes: a tiny byte-level dataset and a track that uses it, PG_REPO_ROOT /
    PG_DATASETS_ROOT pointing at them, and tempfile's folder private so a test can see nothing is left behind."""
    root, dataset = make_tree(tmp_path, monkeypatch)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return root, dataset

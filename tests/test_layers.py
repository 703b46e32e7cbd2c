"""The layering contracts (pyproject.toml [tool.importlinter]) hold: records <- verify <- submit, data apart.

Imports inside functions count too: a lazy import hides a cycle from Python, not from the contract.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_contract_that_is_broken_fails_the_check(tmp_path):
    """The check can fail: a copy of the contracts with a forbidden import planted must report it."""
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    for folder in (package, package / "low", package / "high"):
        (folder / "__init__.py").write_text("")
    (package / "low" / "mod.py").write_text("def f():\n    from pkg.high import thing  # a lazy upward import\n")
    (package / "high" / "thing.py").write_text("")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = pkg\n\n[importlinter:contract:1]\nname = layers\ntype = layers\n"
        "layers =\n    pkg.high\n    pkg.low\n")
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0 and "pkg.low.mod -> pkg.high" in result.stdout, result.stdout[-2000:]
